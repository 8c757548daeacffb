/** Nix's machines syntax (builders): fields, defaults, comments, several machines, bad lines, and who may build what. */
import { Result } from "effect"
import { describe, expect, it } from "vitest"
import * as Machines from "../../src/core/machines.ts"

const parse = (text: string) => Result.getOrThrow(Machines.parseMachines(text, "x86_64-linux"))

describe("machines", () => {
  it("parses all eight fields, with '-' and missing fields taking Nix's defaults", () => {
    const [a, b, c] = parse(`
      ssh://root@big x86_64-linux,i686-linux /key 8 2 kvm,big-parallel benchmark c3NoLWVkMjU1MTkgQUFBQQ==
      builder2 - - - - - -   # a comment
      ssh-ng://small aarch64-linux`)
    expect(a).toEqual({ uri: "ssh://root@big", systems: ["x86_64-linux", "i686-linux"], sshKey: "/key", maxJobs: 8, speedFactor: 2,
      supportedFeatures: ["kvm", "big-parallel"], mandatoryFeatures: ["benchmark"], publicHostKey: "c3NoLWVkMjU1MTkgQUFBQQ==" })
    expect(b).toEqual({ uri: "ssh://builder2", systems: ["x86_64-linux"], sshKey: "", maxJobs: 1, speedFactor: 1, supportedFeatures: [], mandatoryFeatures: [], publicHostKey: "" })
    expect(c!.uri).toBe("ssh-ng://small")
    expect(parse("a;b").map((m) => m.uri)).toEqual(["ssh://a", "ssh://b"])
  })

  it("refuses bad numbers and host keys, and unexpanded @files", () => {
    for (const bad of ["host x86_64-linux - many", "host x86_64-linux - 1 fast", "host - - 1 1 - - not*base64", "@/etc/nix/machines"]) {
      expect(Result.isFailure(Machines.parseMachines(bad, "x86_64-linux"))).toBe(true)
    }
  })

  it("a machine builds its systems, with the features it supports, and only builds needing its mandatory features", () => {
    const [m] = parse("host x86_64-linux - 1 1 kvm benchmark")
    expect(Machines.canBuild(m!, "x86_64-linux", ["benchmark"])).toBe(true)
    expect(Machines.canBuild(m!, "x86_64-linux", ["kvm", "benchmark"])).toBe(true)
    expect(Machines.canBuild(m!, "x86_64-linux", [])).toBe(false) // benchmark is mandatory
    expect(Machines.canBuild(m!, "x86_64-linux", ["benchmark", "cuda"])).toBe(false)
    expect(Machines.canBuild(m!, "aarch64-linux", ["benchmark"])).toBe(false)
  })
})
