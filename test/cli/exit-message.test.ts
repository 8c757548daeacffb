/**
 * What the CLI prints for an error: never an empty line. An error without a message says its tag
 * (or class) and what caused it; control characters from hostile input are escaped.
 */
import { describe, expect, it } from "vitest"
import { exitCodeFor, ExitCode, messageOf } from "../../src/cli/exit.ts"

describe("messageOf", () => {
  it("prints an error's own message as it is", () => {
    expect(messageOf(new Error("build of 'x' failed"))).toBe("build of 'x' failed")
  })

  it("names an error with an empty message by its tag or class, and follows its causes", () => {
    expect(messageOf(new Error(""))).toBe("Error (no message)")
    expect(messageOf({ _tag: "SomethingFailed", message: "" })).toBe("SomethingFailed (no message)")
    expect(messageOf(new Error("", { cause: new Error("connection reset") }))).toBe("Error (no message): connection reset")
    expect(messageOf(new Error("", { cause: { _tag: "Inner", message: "" } }))).toBe("Error (no message): Inner (no message)")
  })

  it("ends on a chain of causes that loops", () => {
    const a = new Error("") as Error & { cause?: unknown }
    a.cause = a
    expect(messageOf(a)).toMatch(/^Error \(no message\)(: Error \(no message\))+$/)
  })

  it("escapes control characters", () => {
    expect(messageOf(new Error("bad \u001b[31mred"))).toBe("bad \\x1b[31mred")
  })

  it("gives an unknown error the general exit code", () => {
    expect(exitCodeFor(new Error(""))).toBe(ExitCode.failure)
  })
})
