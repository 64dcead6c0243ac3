"""`convperceiver ablate`: suites of variants and seeds, their tables and their plots."""
