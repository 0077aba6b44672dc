/* The netpoller's per-request path at the CPython level (see hotpath.c): the PyMethodDef
   table, one entry at a time. */
void *aiosys_hot_def(int i);
const char *aiosys_hot_name(int i);
