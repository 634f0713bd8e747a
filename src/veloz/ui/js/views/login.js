// The login form (authentication on). Shown instead of the app before the first login,
// and over the app (which stays mounted, inert) when a session expired, so what was typed
// elsewhere survives a new login.
import { html, useState, useRef, useEffect } from '../html.js'
import { useStore } from '../store.js'
import { login } from '../api.js'
import { ErrorLine } from '../ui.js'

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
    <div class="field">
      <label for="login-user">User</label>
      <input
        id="login-user"
        name="user_id"
        autocomplete="username"
        required
        ref=${first}
        value=${userId}
        onInput=${(e) => setUserId(e.currentTarget.value)}
        data-testid="login-user"
      />
    </div>
    <div class="field">
      <label for="login-password">Password</label>
      <input
        id="login-password"
        name="password"
        type="password"
        autocomplete="current-password"
        required
        ref=${secret}
        value=${password}
        onInput=${(e) => setPassword(e.currentTarget.value)}
        data-testid="login-password"
      />
    </div>
    <${ErrorLine} error=${error} testid="login-error" />
    <button type="submit" class="btn btn-primary" disabled=${busy} data-testid="login-submit">
      ${busy ? 'Logging in…' : 'Log in'}
    </button>
  </form>`
  return html`<div class=${overlay ? 'login-overlay' : 'login-screen'}>${box}</div>`
}
