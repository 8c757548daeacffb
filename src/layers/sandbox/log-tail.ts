/**
 * The last lines of a build log, kept in bounded memory while the log streams past: at most
 * `maxLines` complete lines of at most `maxLineLength` characters each, plus the unfinished line.
 */
export interface LogTail {
  readonly push: (chunk: Uint8Array) => void
  readonly text: () => string
}

export const makeLogTail = (maxLines = 25, maxLineLength = 4096): LogTail => {
  const decoder = new TextDecoder("utf-8")
  const lines: Array<string> = []
  let partial = ""
  const clip = (line: string) => line.length > maxLineLength ? line.slice(0, maxLineLength) + "…" : line
  return {
    push: (chunk) => {
      const pieces = (partial + decoder.decode(chunk, { stream: true })).split("\n")
      partial = clip(pieces.pop() ?? "")
      for (const piece of pieces.slice(-maxLines)) lines.push(clip(piece))
      if (lines.length > maxLines) lines.splice(0, lines.length - maxLines)
    },
    text: () => {
      const all = partial.length > 0 ? [...lines, partial] : lines
      return all.slice(-maxLines).join("\n")
    }
  }
}
