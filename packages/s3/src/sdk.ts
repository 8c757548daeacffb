/**
 * The AWS SDK's S3 client, loaded when an s3:// store is opened: about 3 MB of code that loading
 * the plugin alone (for its URI options, say) need not parse.
 */
import type * as S3Sdk from "@aws-sdk/client-s3"

export type { S3Sdk }

export const loadSdk = (): Promise<typeof S3Sdk> => import("@aws-sdk/client-s3")
