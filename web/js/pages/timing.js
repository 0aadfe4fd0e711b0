// timing: coming next.
import { h } from "../dom.js";

export async function render(el) {
  el.append(h("h1", {}, "timing"), h("p", { class: "muted" }, "Not built yet."));
}
