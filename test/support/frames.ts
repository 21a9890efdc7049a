/**
 * Frames as a test compares them: text frames as strings (an undecoded `TextFrame` decoded), binary frames
 * as bytes.
 */
import { type Frame, TextFrame } from "../../src/transport/TextFrame.ts"

export const decoded = <F extends Frame>(frames: ReadonlyArray<F>): Array<Exclude<F, TextFrame> | string> =>
  frames.map((frame) => frame instanceof TextFrame ? frame.text() : frame as Exclude<F, TextFrame>)
