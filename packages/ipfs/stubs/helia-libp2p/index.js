// See package.json: @b3/ipfs builds its own libp2p node (src/helia-node.ts).
export const withLibp2p = () => {
  throw new Error("@helia/libp2p is not installed in b3's checkout: @b3/ipfs makes its own libp2p node")
}
