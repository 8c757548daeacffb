/**
 * Progress for long work: a single self-overwriting line on stderr when it is a terminal, and
 * nothing at all when it is not (scripts get results, not noise) or with --quiet (`quiet`, or
 * B3_QUIET=1 in the environment). Updates are throttled.
 */
export interface Progress {
  readonly update: (text: string) => void
  readonly done: () => void
}

export const makeProgress = (label: string, options: { readonly quiet?: boolean; readonly stream?: NodeJS.WriteStream } = {}): Progress => {
  const stream = options.stream ?? process.stderr
  if (!stream.isTTY || options.quiet || process.env.B3_QUIET === "1") return { update: () => {}, done: () => {} }
  let last = 0
  let shown = false
  return {
    update: (text) => {
      const now = Date.now()
      if (now - last < 100) return
      last = now
      shown = true
      stream.write(`\r\x1b[K${label}: ${text}`)
    },
    done: () => { if (shown) stream.write("\r\x1b[K") }
  }
}

/** A byte count for progress lines: `12.3 MiB`. */
export const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`

/** Bytes per second since `started` (a `Date.now()`), for progress lines: `45.6 MiB/s`. */
export const rate = (bytes: number, started: number) => `${mib(bytes / Math.max(0.001, (Date.now() - started) / 1000))}/s`
