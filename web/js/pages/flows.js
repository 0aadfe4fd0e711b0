// flows: coming next.
import { h } from "../dom.js";

export async function render(el) {
  el.append(h("h1", {}, "flows"), h("p", { class: "muted" }, "Not built yet."));
}
