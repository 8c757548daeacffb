/**
 * Numbers printed exactly as Nix 2.8 prints them, computed from the exact binary value of the
 * double (with BigInt), so rounding ties go the way C's printf goes (half to even):
 *
 * - `formatInt`: Nix integers (64-bit) in decimal.
 * - `formatFixed6`: `std::to_string(double)`, i.e. printf `%f` — how `derivation` turns a float attribute
 *   into an environment variable (`1.5` → `1.500000`).
 * - `formatShortest6`: `std::ostream << double` with the default precision, i.e. printf `%g` — how floats
 *   appear in the `__json` of structured-attrs derivations (`1234567.0` → `1.23457e+06`).
 * - `formatNlohmann`: nlohmann::json's `dump()` of a double (shortest round-trip digits, `.0` on integral
 *   values, exponent outside 1e-4…1e15) — how floats appear in `.attrs.json`.
 */

/** `value = digits × 10^exponent`, exactly. */
interface Decimal {
  readonly negative: boolean
  readonly digits: bigint
  readonly exponent: number
}

const exactDecimal = (x: number): Decimal => {
  const view = new DataView(new ArrayBuffer(8))
  view.setFloat64(0, x)
  const hi = view.getUint32(0)
  const lo = view.getUint32(4)
  const negative = hi >>> 31 === 1
  const biased = (hi >>> 20) & 0x7ff
  let mantissa = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo)
  let exp2: number
  if (biased === 0) exp2 = -1074
  else { mantissa |= 1n << 52n; exp2 = biased - 1075 }
  if (exp2 >= 0) return { negative, digits: mantissa << BigInt(exp2), exponent: 0 }
  // m / 2^k = m * 5^k / 10^k
  return { negative, digits: mantissa * 5n ** BigInt(-exp2), exponent: exp2 }
}

/** Divides by 10^k, rounding half to even. */
const roundDiv10 = (n: bigint, k: number): bigint => {
  if (k <= 0) return n * 10n ** BigInt(-k)
  const d = 10n ** BigInt(k)
  const q = n / d
  const twice = (n % d) * 2n
  return twice > d || (twice === d && q % 2n === 1n) ? q + 1n : q
}

const nonFinite = (x: number): string | undefined =>
  Number.isNaN(x) ? "nan" : x === Infinity ? "inf" : x === -Infinity ? "-inf" : undefined

export const formatInt = (n: bigint | number): string => (typeof n === "bigint" ? n : BigInt(n)).toString()

/** printf("%f", x): six decimals, half-to-even on the exact value. */
export const formatFixed6 = (x: number): string => {
  const special = nonFinite(x)
  if (special !== undefined) return special
  const d = exactDecimal(x)
  const scaled = roundDiv10(d.digits, -(d.exponent + 6))
  const s = scaled.toString().padStart(7, "0")
  return `${d.negative ? "-" : ""}${s.slice(0, -6)}.${s.slice(-6)}`
}

const stripZeros = (s: string): string => s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s

const exponentSuffix = (e: number): string => `e${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")}`

/** printf("%g", x) with precision 6 (what `std::ostream << double` prints by default). */
export const formatShortest6 = (x: number): string => {
  const precision = 6
  const special = nonFinite(x)
  if (special !== undefined) return special
  const d = exactDecimal(x)
  const sign = d.negative ? "-" : ""
  if (d.digits === 0n) return `${sign}0`
  const length = d.digits.toString().length
  let rounded = roundDiv10(d.digits, length - precision)
  let exponent = d.exponent + length - precision // value ≈ rounded × 10^exponent
  if (rounded.toString().length > precision) { rounded /= 10n; exponent++ }
  const digits = rounded.toString()
  const x10 = exponent + precision - 1 // the decimal exponent of the first digit
  if (x10 < -4 || x10 >= precision) {
    return `${sign}${stripZeros(`${digits[0]}.${digits.slice(1)}`)}${exponentSuffix(x10)}`
  }
  const decimals = precision - 1 - x10
  const padded = digits.padStart(decimals + 1, "0")
  const text = decimals === 0 ? padded : `${padded.slice(0, -decimals)}.${padded.slice(-decimals)}`
  return `${sign}${stripZeros(text)}`
}

/** nlohmann::json's serialisation of a double (Grisu2 shortest digits, its own layout rules). */
export const formatNlohmann = (x: number): string => {
  if (!Number.isFinite(x)) return "null"
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0"
  const sign = x < 0 ? "-" : ""
  const [mantissa, exp] = Math.abs(x).toExponential().split("e") as [string, string]
  const digits = mantissa.replace(".", "")
  const k = digits.length
  const n = Number(exp) + 1 // position of the decimal point relative to the first digit
  const minExp = -4
  const maxExp = 15
  if (k <= n && n <= maxExp) return `${sign}${digits}${"0".repeat(n - k)}.0`
  if (0 < n && n <= maxExp) return `${sign}${digits.slice(0, n)}.${digits.slice(n)}`
  if (minExp < n && n <= 0) return `${sign}0.${"0".repeat(-n)}${digits}`
  const e = n - 1
  const exponent = `e${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")}`
  return `${sign}${k === 1 ? digits : `${digits[0]}.${digits.slice(1)}`}${exponent}`
}
