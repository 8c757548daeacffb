/**
 * @b3/ipfs: `ipfs://` stores for b3, kept in IPFS by an in-process Helia node (on-disk repo, NARs as
 * UnixFS DAGs that dedup files across paths, versioned roots, peers over loopback TCP), and the
 * `b3 ipfs root` command. Installed beside b3, it is loaded when an ipfs:// store is first opened;
 * a program can also use its layers directly:
 *
 * ```ts
 * import { ipfsRepoLayer } from "@b3/ipfs"
 * program.pipe(Effect.provide(ipfsRepoLayer("/var/b3/ipfs")))
 * ```
 */
import type { B3Plugin } from "b3/plugin"
import { ipfsCommand } from "./command.ts"
import { openIpfsStore } from "./opener.ts"

export { ipfsCommand } from "./command.ts"
export { ipfsOptionsFromUri, ipfsParams, ipfsRepoLayer, ipfsRootLayer, openIpfsStore } from "./opener.ts"

const plugin: B3Plugin = { name: "@b3/ipfs", schemes: { ipfs: openIpfsStore }, commands: [ipfsCommand] }

export default plugin
