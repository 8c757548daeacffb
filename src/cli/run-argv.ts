/**
 * The command lines of `b3 run` that the launchers (bin/b3, bin/b3.cjs) hand straight to the pipeline
 * runner (run-pipeline.ts), without the CLI process in front: b3's global flags (`--json`, `--quiet`/`-q`,
 * `--verbose`, `--log-level LEVEL`) before or after `run`, `--store URI`, `--cache URI` (or `--flag=value`),
 * the pipeline and its arguments (`--` and all after it are arguments). They read as the CLI
 * (effect/cli) reads them. Anything else gives `undefined`, and the CLI takes the command line as
 * usual: help, version, completions, a flag given twice, a boolean flag with a value (`--json false`),
 * an unknown flag, a missing pipeline or flag value. Pure: no imports, so deciding costs nothing.
 */

export interface RunInvocation {
  readonly pipeline: string
  /** `--store`; undefined when not given (the configuration's store then). */
  readonly store: string | undefined
  readonly cache: string | undefined
  readonly json: boolean
  readonly quiet: boolean
  readonly verbose: boolean
  /** The pipeline's arguments. */
  readonly args: ReadonlyArray<string>
}

/** What effect/cli's boolean flags take as their value when it follows them (`--json false`). */
const booleanLiterals = new Set(["true", "1", "y", "yes", "on", "false", "0", "n", "no", "off"])
/** The values of the CLI's `--log-level` (accepted here and, as by the CLI, not passed to the pipeline). */
const logLevels = new Set(["all", "trace", "debug", "info", "warn", "warning", "error", "fatal", "none"])
const negativeNumber = /^-(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/

/** A word effect/cli's lexer takes as a value rather than a flag. */
const isValue = (arg: string) => !arg.startsWith("-") || arg === "-" || negativeNumber.test(arg)

const globalBooleans: Readonly<Record<string, "json" | "quiet" | "verbose">> = { "--json": "json", "--quiet": "quiet", "-q": "quiet", "--verbose": "verbose" }

/** `b3 ARGV…` as a run of a pipeline, if it is one of the shapes above. */
export const parseRunArgv = (argv: ReadonlyArray<string>): RunInvocation | undefined => {
  const end = argv.indexOf("--")
  const head = end < 0 ? argv : argv.slice(0, end)
  const positionals: Array<string> = []
  const seen = new Set<string>()
  const switches = { json: false, quiet: false, verbose: false }
  const values: { store?: string; cache?: string } = {}
  let inRun = false
  for (let i = 0; i < head.length; i++) {
    const arg = head[i]!
    if (isValue(arg)) {
      if (inRun) positionals.push(arg)
      else if (arg === "run") inRun = true
      else return undefined
      continue
    }
    const equals = arg.startsWith("--") ? arg.indexOf("=") : -1
    const name = equals < 0 ? arg : arg.slice(0, equals)
    const key = globalBooleans[name] ?? name
    if (seen.has(key)) return undefined // the CLI says "at most 1 value"
    seen.add(key)
    const flag = globalBooleans[name]
    if (flag !== undefined) {
      if (equals >= 0) return undefined
      const next = head[i + 1]
      if (next !== undefined && booleanLiterals.has(next)) return undefined
      switches[flag] = true
      continue
    }
    if (name !== "--log-level" && (!inRun || (name !== "--store" && name !== "--cache"))) return undefined
    let value: string
    if (equals >= 0) value = arg.slice(equals + 1)
    else {
      const next = head[i + 1]
      if (next === undefined || !isValue(next)) return undefined
      value = next
      i++
    }
    if (name === "--log-level") {
      if (!logLevels.has(value)) return undefined
    } else values[name === "--store" ? "store" : "cache"] = value
  }
  if (!inRun) return undefined
  const operands = [...positionals, ...(end < 0 ? [] : argv.slice(end + 1))]
  const pipeline = operands[0]
  if (pipeline === undefined) return undefined
  return {
    pipeline,
    store: values.store,
    cache: values.cache,
    json: switches.json,
    quiet: switches.quiet,
    verbose: switches.verbose && !switches.quiet,
    args: operands.slice(1)
  }
}
