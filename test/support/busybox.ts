/**
 * A static busybox in a scratch Nix chroot store, so test derivations have `sh`, `cp`, `sed`…
 * inside the sandbox (Debian's Nix has empty sandbox-paths: no /bin/sh there). Built exactly as
 * in nix-notes §1: bb/bin/busybox (Debian busybox-static) + bb/bin/sh → busybox, added with
 * `nix-store --add-fixed --recursive sha256`, which makes it the content-addressed path
 * /nix/store/<hash>-bb.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { nix } from "./nix.ts"

/** Debian's busybox-static. */
export const hostBusybox = "/bin/busybox"

/** Adds busybox to the chroot store rooted at `storeRoot`; returns its logical store path. */
export const addBusybox = (storeRoot: string): string => {
  const staging = mkdtempSync(join(tmpdir(), "b3-busybox-"))
  try {
    const bin = join(staging, "bb", "bin")
    mkdirSync(bin, { recursive: true })
    copyFileSync(hostBusybox, join(bin, "busybox"))
    symlinkSync("busybox", join(bin, "sh"))
    return nix("nix-store", ["--store", storeRoot, "--add-fixed", "--recursive", "sha256", join(staging, "bb")])
  } finally {
    rmSync(staging, { recursive: true, force: true })
  }
}
