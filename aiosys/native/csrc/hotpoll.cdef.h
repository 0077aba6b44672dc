/* hotpoll.c has no cffi-level entry points: its CPython-level hot_dispatch is listed in
   hotpath.c's PyMethodDef table (aiosys_hot_def). */
