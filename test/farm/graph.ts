/**
 * Derivation graphs for the farm tests, in b3's TypeScript derivation API. Environment:
 *   B3_FARM_BUSYBOX  the busybox store path (required)
 *   B3_FARM_SHAPE    layered (default) | independent | feature
 *   B3_FARM_N        derivations (layered: 200, in 10 layers of 20; independent: 60; feature: 1)
 *   B3_FARM_SLEEP    seconds each builder sleeps (default 0; busybox sleep takes fractions)
 *   B3_FARM_SALT     makes the graph's derivations distinct from other tests' (default "")
 *   B3_FARM_ROOTS    layered: which of the last layer's nodes are exported, "FROM-TO" (default all)
 *   B3_FARM_FEATURE  feature: the system feature the one derivation requires
 */
import { Result } from "effect"
import { derivation, storePath, str } from "b3/derivation"

const env = (name: string, fallback?: string): string => {
  const value = process.env[name] ?? fallback
  if (value === undefined) throw new Error(`graph.ts needs ${name}`)
  return value
}

const busybox = storePath(env("B3_FARM_BUSYBOX"))
const sh = str`${busybox}/bin/sh`
const bb = str`${busybox}/bin/busybox`
const salt = env("B3_FARM_SALT", "")
const sleep = env("B3_FARM_SLEEP", "0")
const shape = env("B3_FARM_SHAPE", "layered")

type Drv = ReturnType<typeof make>
type Ref = Parameters<typeof str>[1]
const make = (name: string, inputs: ReadonlyArray<{ readonly outputs: Readonly<Record<string, Ref>> }>, extra: Record<string, unknown> = {}, say = "") => {
  const cat = inputs.reduce<ReturnType<typeof str>>((acc, input) => str`${acc} ${input.outputs.out!}`, str`${bb} cat`)
  return Result.getOrThrow(derivation({
    name, system: "x86_64-linux", builder: sh, salt, ...extra,
    args: ["-c", str`${say ? str`${bb} echo ${say}; ` : str``}${bb} sleep ${sleep}; { ${bb} echo ${name}; ${inputs.length > 0 ? cat : str`true`}; } | ${bb} sha256sum > $out`]
  } as Parameters<typeof derivation>[0]))
}

const exported: Array<Drv> = []
const all: Array<Drv> = []
if (shape === "independent") {
  const n = Number(env("B3_FARM_N", "60"))
  for (let i = 0; i < n; i++) exported.push(make(`ind-${i}`, []))
  all.push(...exported)
} else if (shape === "feature") {
  // B3_FARM_N of them (default 1), each saying hello on its log
  const n = Number(env("B3_FARM_N", "1"))
  for (let i = 0; i < n; i++) exported.push(make(n === 1 ? "needs-feature" : `needs-feature-${i}`, [], { requiredSystemFeatures: [env("B3_FARM_FEATURE", "gpu")] }, `hello from needs-feature-${i}`))
  all.push(...exported)
} else {
  const n = Number(env("B3_FARM_N", "200"))
  const width = 20
  const layers: Array<Array<Drv>> = []
  for (let l = 0; l * width < n; l++) {
    const layer: Array<Drv> = []
    for (let i = 0; i < width && l * width + i < n; i++) {
      const prev = layers[l - 1] ?? []
      // two or three inputs from the layer below, spread deterministically
      const inputs = prev.length === 0 ? [] : [prev[i % prev.length]!, prev[(i * 7 + 3) % prev.length]!, ...(i % 3 === 0 ? [prev[(i * 13 + 5) % prev.length]!] : [])]
      layer.push(make(`n-${l}-${i}`, [...new Set(inputs)]))
    }
    layers.push(layer)
    all.push(...layer)
  }
  const last = layers[layers.length - 1]!
  const [from, to] = env("B3_FARM_ROOTS", `0-${last.length - 1}`).split("-").map(Number)
  exported.push(...last.slice(from, to! + 1))
}

export default exported

/** Every derivation of the graph (not only the exported roots), for tests that compare all outputs. */
export const allDerivations = () => all
