// Preact + htm, the one place views import them from (no build step: the import map in
// index.html points "preact", "preact/hooks" and "htm" at the vendored files).
import { h, render, Fragment } from 'preact'
import htm from 'htm'

export { h, render, Fragment }
export { useState, useEffect, useRef, useMemo, useCallback, useReducer } from 'preact/hooks'

// html`<div class=${x}>...</div>`: JSX-like templates without a compiler.
export const html = htm.bind(h)
