"""API keys (admin): the key and webhook secret are shown once, at creation."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import admin_only, current_key
from api.presenters import present_key
from api.resources.common import document_problems
from api.schemas import ApiKeyCreated, ApiKeyIn, ApiKeyList, RotatedSecret
from booking.services import keys, webhooks

blp = Blueprint("api_keys", __name__, url_prefix="/v1/api-keys", description="API keys.")


@blp.route("")
class ApiKeys(MethodView):
    @admin_only
    @blp.response(200, ApiKeyList)
    @document_problems(blp, 403)
    def get(self):
        """List keys (never their secrets)."""
        return {"items": [present_key(k) for k in keys.list_keys()]}

    @admin_only
    @blp.arguments(ApiKeyIn())
    @blp.response(201, ApiKeyCreated)
    @document_problems(blp, 400, 403, 413, 415, 422)
    def post(self, fields):
        """Create a key; its plaintext and webhook secret appear only in this answer."""
        created = keys.create_key(fields["name"], fields["role"])
        return {**present_key(created.api_key), "key": created.key,
                "webhook_secret": created.webhook_secret}


@blp.route("/<uuid:key_id>")
class ApiKey(MethodView):
    @admin_only
    @blp.response(204)
    @document_problems(blp, 403, 404)
    def delete(self, key_id):
        """Revoke a key; it answers 401 from now on."""
        keys.revoke_key(key_id)


@blp.route("/<uuid:key_id>/rotate-webhook-secret")
class RotateWebhookSecret(MethodView):
    @blp.response(200, RotatedSecret)
    @document_problems(blp, 404)
    def post(self, key_id):
        """A new webhook secret (shown once); the old one also signs during the grace period."""
        api_key, secret = webhooks.rotate_webhook_secret(current_key(), key_id)
        return {"id": api_key.id, "webhook_secret": secret,
                "previous_secret_expires_at": api_key.previous_secret_expires_at}
