# embed.cmake - turn a text file into a C string constant at build time:
#   cmake -DIN=file.json -DOUT=file.c -DNAME=symbol -P embed.cmake
# Bytes are written as hex escapes, so nothing in the file needs quoting.
file(READ ${IN} hex HEX)
string(REGEX REPLACE "(..)" "\\\\x\\1" escaped "${hex}")
string(LENGTH "${escaped}" len)
set(body "")
set(pos 0)
# Split into lines of 32 bytes (128 characters of escapes) for the compiler.
while(pos LESS len)
  string(SUBSTRING "${escaped}" ${pos} 128 chunk)
  string(APPEND body "    \"${chunk}\"\n")
  math(EXPR pos "${pos} + 128")
endwhile()
file(WRITE ${OUT} "/* Generated from ${IN} by cmake/embed.cmake: do not edit. */\nconst char ${NAME}[] =\n${body}    \"\";\n")
