/* CPython-level fast paths (see fastpath.c): the PyMethodDef table, one entry at a time. */
void *aiosys_fast_def(int i);
const char *aiosys_fast_name(int i);
