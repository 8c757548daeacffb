/**
 * The AWS SDK's S3 client, loaded from node_modules at run time when an s3:// store is opened.
 * It is not bundled into the CLI (importModule's specifier is not a literal, so esbuild leaves the
 * import alone): it is about 3 MB of code that every b3 start would otherwise have to parse.
 */
import type * as S3Sdk from "@aws-sdk/client-s3"
import { importModule } from "../../io/import-module.ts"

export type { S3Sdk }

const specifier = "@aws-sdk/client-s3"

export const loadSdk = (): Promise<typeof S3Sdk> => importModule<typeof S3Sdk>(specifier)
