/** b3's version (printed by --version, sent to daemon clients). */
export const version = "0.1.0"
