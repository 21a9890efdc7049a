/**
 * Frames as a test compares them: text frames as strings (an undecoded `TextFrame` decoded), binary frames
 * as bytes.
 */
import { type Frame, TextFrame } from "../../src/transport/TextFrame.ts"

export const decoded = (frames: ReadonlyArray<Frame>): Array<string | Uint8Array> =>
  frames.map((frame) => frame instanceof TextFrame ? frame.text() : frame)
