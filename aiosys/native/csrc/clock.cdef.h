/* Clocks served by the vDSO (Go's nanotime / walltime): no kernel entry on x86_64/arm64. */
long long aiosys_nanotime(void);
long long aiosys_walltime(void);
int aiosys_vdso_present(void);
