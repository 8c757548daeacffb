/**
 * Evaluated first in the snapshot bundle (snapshot-entry.ts imports it before anything else).
 *
 * A V8 snapshot cannot hold ICU objects, and Effect's CLI output module makes an `Intl.Segmenter` when
 * it is evaluated (to measure text width); made while the snapshot is built, it would also be one of
 * the build's locale. So while the modules are evaluated, `Intl.Segmenter` makes stand-ins that create
 * the real segmenter on first use, in the run. snapshot-entry.ts puts the real class back afterwards.
 */
const RealSegmenter = Intl.Segmenter

class LazySegmenter {
  private readonly args: ConstructorParameters<typeof Intl.Segmenter>
  private real: Intl.Segmenter | undefined
  constructor(...args: ConstructorParameters<typeof Intl.Segmenter>) { this.args = args }
  private get segmenter(): Intl.Segmenter { return this.real ??= new RealSegmenter(...this.args) }
  segment(input: string): Intl.Segments { return this.segmenter.segment(input) }
  resolvedOptions(): Intl.ResolvedSegmenterOptions { return this.segmenter.resolvedOptions() }
}

const intl = Intl as { Segmenter: unknown } // writable, though TypeScript's lib declares it read-only
intl.Segmenter = LazySegmenter

/** Puts Intl.Segmenter back, once every module is evaluated. */
export const restoreIntl = (): void => { intl.Segmenter = RealSegmenter }
