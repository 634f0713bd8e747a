// The login form (authentication on). Shown instead of the app before the first login,
// and over the app (which stays mounted, inert) when a session expired, so what was typed
// elsewhere survives a new login.
import { html, useState, useRef, useEffect } from '../html.js'
import { useStore } from '../store.js'
import { login } from '../api.js'
import { ErrorLine } from '../ui.js'

// A required input with its label; `id` is also its data-testid.
function Field({ id, label, inputRef, value, onValue, ...input }) {
  return html`<div class="field">
    <label for=${id}>${label}</label>
    <input
      id=${id}
      ...${input}
      required
      ref=${inputRef}
      value=${value}
      onInput=${(e) => onValue(e.currentTarget.value)}
      data-testid=${id}
    />
  </div>`
}

export function LoginView({ overlay = false }) {
  const auth = useStore((s) => s.auth)
  const [userId, setUserId] = useState(auth.me && auth.me.kind === 'user' ? auth.me.name : '')
  const [password, setPassword] = useState('')
  const [error, setError] = useState(null)
  const [busy, setBusy] = useState(false)
  const first = useRef(null)
  const secret = useRef(null)

  useEffect(() => {
    ;(userId ? secret : first).current.focus()
  }, [])

  const submit = async (e) => {
    e.preventDefault()
    setBusy(true)
    setError(null)
    try {
      await login(userId, password)
    } catch (err) {
      setError(err)
      setPassword('')
      setBusy(false)
    }
  }

  const box = html`<form
    class="login-box"
    onSubmit=${submit}
    aria-label="Log in"
    data-testid="login-form"
    role=${overlay ? 'dialog' : undefined}
    aria-modal=${overlay ? 'true' : undefined}
  >
    <h1>VeloZ — log in</h1>
    ${overlay
      ? html`<p class="muted" data-testid="login-expired">
          Your session has ended. Log in again: what you typed is kept.
        </p>`
      : null}
    <${Field} id="login-user" label="User" name="user_id" autocomplete="username"
      inputRef=${first} value=${userId} onValue=${setUserId} />
    <${Field} id="login-password" label="Password" name="password" type="password"
      autocomplete="current-password" inputRef=${secret} value=${password} onValue=${setPassword} />
    <${ErrorLine} error=${error} testid="login-error" />
    <button type="submit" class="btn btn-primary" disabled=${busy} data-testid="login-submit">
      ${busy ? 'Logging in…' : 'Log in'}
    </button>
  </form>`
  return html`<div class=${overlay ? 'login-overlay' : 'login-screen'}>${box}</div>`
}
