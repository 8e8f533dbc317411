"""The web UI's routes: server-rendered pages at ``/ui/`` and its confirmed actions (layer: ui).

``ui_routes(settings)`` returns the routes the CLI (the composition root) passes to
``stead.serving.app.create_app(..., extra_routes=...)``: a ``Mount("/ui")`` and ``/favicon.ico``. Pages read
the server's store (``request.app.state.store``) through :mod:`stead.ui.views`; every asset (CSS, script,
uPlot, the favicon) is package data, so the UI needs no network beyond the server.

Auth follows the server's tokens. The serving middleware lets ``/ui`` through (the mount is declared
``open``) and the UI checks the token itself, from an HttpOnly, SameSite=Strict cookie set by its sign-in
form: with tokens configured, pages need ``read`` when ``STEAD_AUTH_READS=1``, and actions need ``write``.
Every form carries a CSRF token (double submit: a random value in its own SameSite=Strict cookie and in the
form, compared in constant time). An action (promote, roll back, move an alias, acknowledge an alert) is
confirmed on its own page, then goes through the same core functions as the CLI, so it writes the same
revisions and audit rows; its actor is recorded as ``ui:<role>``.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from stead.errors import ConflictError, NotFoundError, SteadError, ValidationError
from stead.serving.auth import RANK, Authenticator, guard
from stead.settings import Settings
from stead.ui import views

__all__ = ["FACTORY", "TOKEN_COOKIE", "UI", "create_app_from_env", "ui_routes"]

TOKEN_COOKIE = "stead_ui_token"
CSRF_COOKIE = "stead_ui_csrf"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
STATIC = {
    "ui.css": ("ui", "static/ui.css", "text/css; charset=utf-8"),
    "ui.js": ("ui", "static/ui.js", "text/javascript; charset=utf-8"),
    "favicon.svg": ("ui", "static/favicon.svg", "image/svg+xml"),
    "favicon.ico": ("ui", "static/favicon.ico", "image/x-icon"),
    "uPlot.min.css": ("vendor", "uplot/uPlot.min.css", "text/css; charset=utf-8"),
    "uPlot.iife.min.js": ("vendor", "uplot/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
}
ACTIONS = {
    "promote": ("Promote", "write"),
    "rollback": ("Roll back", "write"),
    "alias": ("Move alias", "write"),
    "ack": ("Acknowledge alert", "write"),
}
DONE = {
    "promote": "Promoted: the canary now serves all traffic and is champion.",
    "rollback": "Rolled back: the previous routes serve again.",
    "alias": "Alias moved.",
    "ack": "Alert acknowledged.",
    "login": "Signed in.",
    "logout": "Signed out.",
}


def _script_json(data: Any) -> Markup:
    """JSON that is safe inside ``<script type="application/json">``."""
    text = json.dumps(data, default=str, allow_nan=False, separators=(",", ":"))
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}"
    return str(value)


def _when(value: Any) -> Markup:
    """A timestamp that never wraps inside itself."""
    return Markup('<span class="nowrap">{}</span>').format(views.fmt_time(value))


def _duration(seconds: Any) -> str:
    """``42 s``, ``12 min``, ``3.5 h``, ``4.2 days``."""
    if seconds is None:
        return "-"
    s = float(seconds)
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def _short(value: Any, n: int = 12) -> str:
    return str(value)[:n]


def _pct(value: Any) -> str:
    return "-" if value is None else f"{float(value) * 100:.4g}%"


def _bytes(value: Any) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/ui/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui/"


class UI:
    """The UI's state: settings, the token checker and the template environment."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.auth = Authenticator(settings)
        env = Environment(
            loader=PackageLoader("stead.ui", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters.update(
            {
                "t": _when,
                "num": _num,
                "pct": _pct,
                "bytes": _bytes,
                "json": _script_json,
                "short": _short,
                "duration": _duration,
                "urlq": lambda s: quote(str(s), safe=""),
            }
        )
        env.globals["node_href"] = views.node_href
        self.env = env
        self._static: dict[str, bytes] = {}

    # ------------------------------------------------------------------ plumbing
    def role(self, request: Request) -> str | None:
        token = request.cookies.get(TOKEN_COOKIE)
        return self.auth.role_of(token) if token and self.auth.enabled else None

    def can(self, role: str | None, needed: str) -> bool:
        """Whether ``role`` may do what needs ``needed`` under this server's configuration."""
        need = self.auth.needed("read" if needed == "read" else "write" if needed == "write" else "admin")
        return need is None or (role is not None and RANK[role] >= RANK[need])

    def render(
        self, request: Request, template: str, context: Mapping[str, Any], status_code: int = 200
    ) -> HTMLResponse:
        csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
        role = self.role(request)
        done = request.query_params.get("done")
        body = self.env.get_template(template).render(
            {
                **context,
                "request": request,
                "csrf": csrf,
                "role": role,
                "auth_enabled": self.auth.enabled,
                "can_write": self.can(role, "write"),
                "done": DONE.get(done or ""),
                "path": request.url.path,
            }
        )
        response = HTMLResponse(body, status_code=status_code)
        if request.cookies.get(CSRF_COOKIE) != csrf:
            self._cookie(request, response, CSRF_COOKIE, csrf)
        response.headers["content-security-policy"] = CSP
        response.headers["x-content-type-options"] = "nosniff"
        response.headers["referrer-policy"] = "same-origin"
        response.headers["cache-control"] = "no-store"
        return response

    @staticmethod
    def _cookie(request: Request, response: Response, key: str, value: str, max_age: int | None = None) -> None:
        response.set_cookie(
            key,
            value,
            max_age=max_age,
            path="/ui",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    def problem(self, request: Request, exc: SteadError | str, status_code: int | None = None) -> HTMLResponse:
        message = exc if isinstance(exc, str) else exc.message
        hint = None if isinstance(exc, str) else exc.hint
        code = status_code or (exc.status_code if isinstance(exc, SteadError) else 400)
        return self.render(request, "error.html", {"message": message, "hint": hint, "code": code}, code)

    def page(self, template: str, build: Callable[[Request], Mapping[str, Any]]) -> Callable[[Request], Any]:
        """A GET page: check read access, gather its data in the threadpool, render it (errors as pages)."""

        async def endpoint(request: Request) -> Response:
            if not self.can(self.role(request), "read"):
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/ui/login?{urlencode({'next': target})}", status_code=303)
            try:
                context = await run_in_threadpool(build, request)
            except SteadError as exc:
                return self.problem(request, exc)
            return self.render(request, template, context)

        return endpoint

    # ------------------------------------------------------------------ pages
    def overview(self, request: Request) -> Mapping[str, Any]:
        return views.overview_page(request.app.state.store)

    def runs(self, request: Request) -> Mapping[str, Any]:
        q = request.query_params
        data = views.runs_page(
            request.app.state.store,
            q.get("experiment"),
            q.get("filter"),
            q.get("order_by"),
            q.getlist("cols"),
            q.get("page_token"),
        )
        return {
            **data,
            "q": q,
            "experiment": q.get("experiment") or "",
            "filter": q.get("filter") or "",
            "order_by": q.get("order_by") or "",
            "cols": q.getlist("cols"),
        }

    def compare(self, request: Request) -> Mapping[str, Any]:
        ids = request.query_params.getlist("id")
        if len(ids) < 2:
            raise ValidationError("choose at least two runs to compare", hint="tick two or more runs in the table")
        return views.compare_page(request.app.state.store, ids)

    def run(self, request: Request) -> Mapping[str, Any]:
        return views.run_page(request.app.state.store, request.path_params["run_id"])

    def dataset(self, request: Request) -> Mapping[str, Any]:
        return views.dataset_page(request.app.state.store, request.path_params["dataset_id"])

    def model(self, request: Request) -> Mapping[str, Any]:
        return views.model_page(request.app.state.store, request.path_params["name"])

    def lineage(self, request: Request) -> Mapping[str, Any]:
        store = request.app.state.store
        ref = (request.query_params.get("ref") or "").strip()
        direction = request.query_params.get("direction") or "both"
        suggestions = views.lineage_suggestions(store)
        if not ref:
            return {"ref": "", "graph": None, "suggestions": suggestions, "direction": direction}
        return {
            "ref": ref,
            "graph": views.lineage_page(store, ref, direction),
            "suggestions": suggestions,
            "direction": direction,
        }

    def deployment(self, request: Request) -> Mapping[str, Any]:
        return views.deployment_page(request.app.state.store, request.path_params["name"])

    # ------------------------------------------------------------------ sign in
    async def login_form(self, request: Request) -> Response:
        return self.render(
            request,
            "login.html",
            {
                "next": _safe_next(request.query_params.get("next")),
                "error": None,
                "why": request.query_params.get("why"),
            },
        )

    async def _form(self, request: Request) -> dict[str, str]:
        body = await request.body()
        if len(body) > 64 * 1024:
            raise ValidationError("the form is too large")
        parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
        return {k: v[-1] for k, v in parsed.items()}

    def _csrf_ok(self, request: Request, form: Mapping[str, str]) -> bool:
        cookie = request.cookies.get(CSRF_COOKIE) or ""
        sent = form.get("csrf") or ""
        return bool(cookie) and hmac.compare_digest(cookie.encode(), sent.encode())

    async def login(self, request: Request) -> Response:
        form = await self._form(request)
        nxt = _safe_next(form.get("next"))
        if not self._csrf_ok(request, form):
            return self.problem(request, "the form's CSRF token did not match: reload the page and try again", 403)
        token = (form.get("token") or "").strip()
        role = self.auth.role_of(token) if token and self.auth.enabled else None
        if role is None:
            error = (
                "this server has no tokens configured: everything is open, there is nothing to sign in to"
                if not self.auth.enabled
                else "unknown token: check it against the server's STEAD_TOKENS"
            )
            return self.render(request, "login.html", {"next": nxt, "error": error, "why": None}, 401)
        sep = "&" if "?" in nxt else "?"
        response = RedirectResponse(f"{nxt}{sep}done=login", status_code=303)
        self._cookie(request, response, TOKEN_COOKIE, token, max_age=12 * 3600)
        return response

    async def logout(self, request: Request) -> Response:
        form = await self._form(request)
        if not self._csrf_ok(request, form):
            return self.problem(request, "the form's CSRF token did not match: reload the page and try again", 403)
        response = RedirectResponse("/ui/?done=logout", status_code=303)
        response.delete_cookie(TOKEN_COOKIE, path="/ui", httponly=True, samesite="strict")
        return response

    # ------------------------------------------------------------------ actions
    def _describe(self, store: Any, action: str, args: Mapping[str, str]) -> tuple[str, str]:
        """What the action will do (for the confirmation page) and the page to return to."""
        if action in ("promote", "rollback"):
            name = args.get("deployment") or ""
            d = store.get_deployment(name, history=2)
            back = f"/ui/deployments/{quote(name)}"
            now = ", ".join(f"{r.model}/{r.version} {r.kind} {r.weight:.0%}" for r in d.routes)
            if action == "promote":
                cand = next((r for r in d.routes if r.kind in ("canary", "ab")), None)
                if cand is None:
                    raise ConflictError(f"deployment {name!r} has no canary or A/B route to promote")
                return (
                    f"Promote {cand.model}/{cand.version} on {name} to 100% and make it champion (now: {now}).",
                    back,
                )
            if len(d.history) < 2:
                raise ConflictError(f"deployment {name!r} has only one revision: there is nothing to roll back to")
            prev = d.history[-2]
            then = ", ".join(f"{r.model}/{r.version} {r.kind} {r.weight:.0%}" for r in prev.routes)
            return (
                f"Roll {name} back from revision {d.revision} ({now}) to the routes of revision "
                f"{prev.revision} ({then}).",
                back,
            )
        if action == "alias":
            name, alias, version = args.get("model") or "", args.get("alias") or "", args.get("version") or ""
            store.get_model_version(name, int(version) if version.isdigit() else -1)
            return (f"Point {name}@{alias} at version {version}.", f"/ui/models/{quote(name)}")
        if action == "ack":
            alert_id = args.get("alert") or ""
            found = [a for a in store.list_alerts(open_only=False, limit=1000) if str(a.id) == alert_id]
            if not found:
                raise NotFoundError(f"no alert {alert_id!r}")
            a = found[0]
            return (
                f"Acknowledge alert {a.id} ({a.rule} on {a.deployment}, opened {views.fmt_time(a.opened_at)}).",
                f"/ui/deployments/{quote(a.deployment)}#alerts",
            )
        raise NotFoundError(f"no action {action!r}", hint=f"actions: {', '.join(ACTIONS)}")

    async def confirm(self, request: Request) -> Response:
        action = request.path_params["action"]
        if not self.can(self.role(request), "read"):
            return RedirectResponse(f"/ui/login?{urlencode({'next': str(request.url.path)})}", status_code=303)
        args = {
            k: v for k, v in request.query_params.items() if k in ("deployment", "model", "alias", "version", "alert")
        }
        try:
            what, back = await run_in_threadpool(self._describe, request.app.state.store, action, args)
        except SteadError as exc:
            return self.problem(request, exc)
        label, _ = ACTIONS[action]
        return self.render(
            request, "confirm.html", {"action": action, "label": label, "what": what, "back": back, "args": args}
        )

    def _act(self, store: Any, action: str, form: Mapping[str, str], actor: str) -> None:
        from stead import deployments, registry

        reason = (form.get("reason") or "").strip() or None
        if action == "promote":
            deployments.promote(store, form.get("deployment") or "", reason, actor)
        elif action == "rollback":
            deployments.rollback(store, form.get("deployment") or "", reason, actor)
        elif action == "alias":
            version = form.get("version") or ""
            if not version.isdigit():
                raise ValidationError(f"version must be a number, got {version!r}")
            registry.set_alias(
                store, form.get("model") or "", form.get("alias") or "", int(version), reason=reason, actor=actor
            )
        elif action == "ack":
            alert = form.get("alert") or ""
            if not alert.isdigit():
                raise ValidationError(f"alert must be a number, got {alert!r}")
            store.ack_alert(int(alert), actor)

    @staticmethod
    def _back(action: str, form: Mapping[str, str]) -> str:
        """Where to return after signing in: the page the action started from."""
        if action in ("promote", "rollback") and form.get("deployment"):
            return f"/ui/deployments/{quote(form['deployment'], safe='')}"
        if action == "alias" and form.get("model"):
            return f"/ui/models/{quote(form['model'], safe='')}"
        return "/ui/"

    async def act(self, request: Request) -> Response:
        action = request.path_params["action"]
        if action not in ACTIONS:
            return self.problem(request, NotFoundError(f"no action {action!r}"))
        label, needed = ACTIONS[action]
        form = await self._form(request)
        role = self.role(request)
        if not self._csrf_ok(request, form):
            return self.problem(
                request, "refused: the form's CSRF token did not match; reload the page and try again", 403
            )
        if not self.can(role, needed):
            if role is None:
                why = (
                    f"refused: {label.lower()} needs a token with the {needed!r} role, and you are not signed in. "
                    "Sign in with a write token and try again."
                )
                code = 401
            else:
                why = (
                    f"refused: {label.lower()} needs a token with the {needed!r} role; you are signed in with a "
                    f"{role!r} token. Ask an admin for a write token."
                )
                code = 403
            back = self._back(action, form)
            context = {"message": why, "hint": None, "code": code, "login": back}
            return self.render(request, "error.html", context, code)
        store = request.app.state.store
        actor = f"ui:{role or 'open'}"
        args = {k: form.get(k, "") for k in ("deployment", "model", "alias", "version", "alert")}
        try:
            _, back = await run_in_threadpool(self._describe, store, action, args)
            await run_in_threadpool(self._act, store, action, form, actor)
        except SteadError as exc:
            return self.problem(request, exc)
        path, _, frag = back.partition("#")
        return RedirectResponse(f"{path}?done={action}" + (f"#{frag}" if frag else ""), status_code=303)

    # ------------------------------------------------------------------ assets
    def _asset(self, name: str) -> bytes:
        data = self._static.get(name)
        if data is None:
            where, path, _ = STATIC[name]
            root = (
                resources.files("stead.ui") if where == "ui" else resources.files("stead").joinpath("static", "vendor")
            )
            data = self._static[name] = root.joinpath(path).read_bytes()
        return data

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(
            self._asset(name),
            media_type=STATIC[name][2],
            headers={"cache-control": "public, max-age=3600", "x-content-type-options": "nosniff"},
        )

    async def favicon(self, request: Request) -> Response:
        return Response(
            self._asset("favicon.ico"), media_type="image/x-icon", headers={"cache-control": "public, max-age=86400"}
        )

    async def artifact(self, request: Request) -> Response:
        """A run's artifact, for images shown inline and downloads; sandboxed so an SVG or HTML cannot script."""
        if not self.can(self.role(request), "read"):
            return Response("sign in first", status_code=401, media_type="text/plain")
        run_id, name = request.path_params["run_id"], request.path_params["name"]
        store = request.app.state.store
        try:
            run = await run_in_threadpool(store.get_run, run_id)
            digest = run.artifacts.get(name)
            if digest is None:
                raise NotFoundError(f"run {run_id} has no artifact {name!r}")
            data = await run_in_threadpool(store.artifacts.get_bytes, digest, name=name)
        except SteadError as exc:
            return Response(exc.message, status_code=exc.status_code, media_type="text/plain")
        lower = name.lower()
        types = {
            ".png": "image/png",
            ".jpg": "image/jpeg",
            ".jpeg": "image/jpeg",
            ".gif": "image/gif",
            ".webp": "image/webp",
            ".svg": "image/svg+xml",
        }
        media = next((t for ext, t in types.items() if lower.endswith(ext)), None)
        headers = {
            "content-security-policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'",
            "x-content-type-options": "nosniff",
            "cache-control": "private, max-age=3600",
        }
        if media is None:
            media = "text/plain; charset=utf-8" if lower.endswith(views.TEXT_EXT) else "application/octet-stream"
            headers["content-disposition"] = f"attachment; filename*=UTF-8''{quote(name.rpartition('/')[2])}"
        return Response(data, media_type=media, headers=headers)

    # ------------------------------------------------------------------ routes
    def routes(self) -> list[BaseRoute]:
        inner = [
            Route("/", self.page("overview.html", self.overview), name="ui_overview"),
            Route("/runs", self.page("runs.html", self.runs), name="ui_runs"),
            Route("/runs/compare", self.page("compare.html", self.compare), name="ui_compare"),
            Route("/runs/{run_id}", self.page("run.html", self.run), name="ui_run"),
            Route("/runs/{run_id}/artifacts/{name:path}", self.artifact, name="ui_artifact"),
            Route("/datasets/{dataset_id}", self.page("dataset.html", self.dataset), name="ui_dataset"),
            Route("/models/{name}", self.page("model.html", self.model), name="ui_model"),
            Route("/deployments/{name}", self.page("deployment.html", self.deployment), name="ui_deployment"),
            Route("/lineage", self.page("lineage.html", self.lineage), name="ui_lineage"),
            Route("/login", self.login_form, methods=["GET"], name="ui_login_form"),
            Route("/login", self.login, methods=["POST"], name="ui_login"),
            Route("/logout", self.logout, methods=["POST"], name="ui_logout"),
            Route("/actions/{action}", self.confirm, methods=["GET"], name="ui_confirm"),
            Route("/actions/{action}", self.act, methods=["POST"], name="ui_act"),
            Route("/static/{name}", self.static, name="ui_static"),
            Route("/favicon.ico", self.favicon, name="ui_favicon"),
        ]
        return [
            guard(Route("/ui", lambda request: RedirectResponse("/ui/", status_code=307), name="ui_root"), "open"),
            guard(Mount("/ui", routes=inner), "open"),  # the UI checks its cookie itself (see the module docstring)
            guard(Route("/favicon.ico", self.favicon, methods=["GET"], name="favicon"), "open"),
        ]


def ui_routes(settings: Settings) -> list[BaseRoute]:
    """The UI's routes for ``create_app(settings, extra_routes=ui_routes(settings))``."""
    return UI(settings).routes()


FACTORY = "stead.ui.app:create_app_from_env"


def create_app_from_env() -> Any:
    """The server with the UI, settings re-read from the environment (what each ``--workers N`` worker calls)."""
    from stead.serving.app import create_app

    settings = Settings.from_env()
    return create_app(settings, extra_routes=ui_routes(settings), exit_fast=True)
