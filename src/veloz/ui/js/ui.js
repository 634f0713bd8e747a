// Small shared pieces: an error line, a confirm dialog, time formatting, a titled panel.
import { html, render, useEffect, useRef } from './html.js'
import { errorText } from './api.js'

// An error in words (role="alert"); nothing when `error` is null/undefined/''.
// `error` may be an ApiError, an Error, a string or anything errorText() takes.
export function ErrorLine({ error, testid }) {
  if (error === null || error === undefined || error === '' || error === false) return null
  return html`<p class="error-line" role="alert" data-testid=${testid || 'error-line'}>
    ${errorText(error)}
  </p>`
}

function ConfirmDialog({ text, onDone }) {
  const ref = useRef(null)
  const cancelRef = useRef(null)
  useEffect(() => {
    const dialog = ref.current
    dialog.showModal()
    cancelRef.current.focus()
  }, [])
  const close = (answer) => {
    if (ref.current.open) ref.current.close()
    onDone(answer)
  }
  return html`<dialog
    ref=${ref}
    class="confirm-dialog"
    data-testid="confirm-dialog"
    aria-label="Confirm"
    onCancel=${(e) => {
      e.preventDefault()
      close(false)
    }}
  >
    <p class="confirm-text">${text}</p>
    <div class="confirm-buttons">
      <button type="button" class="btn" ref=${cancelRef} data-testid="confirm-cancel"
        onClick=${() => close(false)}>Cancel</button>
      <button type="button" class="btn btn-danger" data-testid="confirm-ok"
        onClick=${() => close(true)}>Confirm</button>
    </div>
  </dialog>`
}

// A modal "Confirm" / "Cancel" dialog; focus starts on Cancel and Esc cancels.
// Resolves true when confirmed.
export function confirmAction(text) {
  return new Promise((resolve) => {
    const host = document.createElement('div')
    document.body.appendChild(host)
    const returnFocus = document.activeElement
    const done = (answer) => {
      render(null, host)
      host.remove()
      if (returnFocus && typeof returnFocus.focus === 'function') returnFocus.focus()
      resolve(answer)
    }
    render(html`<${ConfirmDialog} text=${text} onDone=${done} />`, host)
  })
}

const pad = (n) => String(n).padStart(2, '0')

// "YYYY-MM-DD HH:MM:SS" UTC from UNIX nanoseconds (a number or the digit string the API
// gives for big integers); '' for null/undefined/garbage.
export function fmtTime(tsNs) {
  if (tsNs === null || tsNs === undefined || tsNs === '') return ''
  let ms
  try {
    ms = Number(BigInt(String(tsNs).split('.')[0]) / 1000000n)
  } catch {
    return ''
  }
  const d = new Date(ms)
  if (Number.isNaN(d.getTime())) return ''
  return (
    `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`
  )
}

// A titled section: <section aria-label=title> with a header (title + optional actions).
export function Panel({ title, children, actions, testid, class: cls }) {
  return html`<section class=${`panel ${cls || ''}`} aria-label=${title} data-testid=${testid}>
    <header class="panel-head">
      <h2 class="panel-title">${title}</h2>
      ${actions ? html`<div class="panel-actions">${actions}</div>` : null}
    </header>
    <div class="panel-body">${children}</div>
  </section>`
}
