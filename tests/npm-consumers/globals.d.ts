// What the consumer apps leave on `window` for consumers.test.mjs (their result, or the error).
interface Window {
  result: unknown;
}
