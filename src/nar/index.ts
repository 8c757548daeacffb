// placeholder until the streaming NAR module lands
import { Stream } from "effect"
export const narFromPath = (_path: string): Stream.Stream<Uint8Array, Error> => Stream.fail(new Error("not yet"))
