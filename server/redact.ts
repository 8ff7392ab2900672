// Error text can carry file-system paths (an fs error names the file it could
// not open: the data directory, the model directory). Clients must never see
// them; the log keeps the detail. URL paths of this API (/v1/..., /metrics)
// are not file paths and stay.

const FILE_URL = /file:\/\/[^\s'"`)\]]+/g;
// An absolute path of two or more segments, not one of this API's own routes.
const ABS_PATH = /(^|[\s'"`(=:,[])(\/(?!(?:v1|healthz|readyz|metrics|openapi\.json)(?:\/|\b))[^\s'"`/(),\]]*(?:\/[^\s'"`(),\]]*)+)/g;
const WINDOWS_PATH = /\b[A-Za-z]:\\[^\s'"`(),\]]*/g;

export function redactPaths(message: string): string {
  return message.replace(FILE_URL, '<path>').replace(ABS_PATH, '$1<path>').replace(WINDOWS_PATH, '<path>');
}
