"""What the Kimi account can use, from `GET /v1/models` (reference §9.6): read at start and every hour.

Per model: its context window and whether it reads images and video and can think. The `model` command accepts
only models the account has. When the configured default is not among them (kimi-k2.5 is closed to accounts
registered after K3 launched), the catalog says so once and answers with the best K2 model the account has,
instead of failing every message with a 404. Until a list has been read (Kimi unreachable at start), nothing
is refused and the configured values apply.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from bot.config import KimiConfig
from bot.kimi import KimiClient, KimiError

log = logging.getLogger(__name__)

_VERSION = re.compile(r"^kimi-k(\d+)(?:\.(\d+))?$")


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    context_length: int | None = None
    image_in: bool = True
    video_in: bool = False
    reasoning: bool = True


class ModelCatalog:
    def __init__(self, kimi: KimiClient, config: KimiConfig) -> None:
        self._kimi = kimi
        self._config = config
        self._models: dict[str, ModelInfo] = {}
        self._fallback: str | None = None

    @property
    def known(self) -> bool:
        return bool(self._models)

    async def refresh(self) -> bool:
        """Read the account's models; False (and the previous list kept) when Kimi cannot be asked."""
        try:
            listed = await self._kimi.list_models()
        except KimiError as error:
            log.warning("could not read Kimi's model list; using the configured model", extra={"kind": error.kind})
            return False
        models = {m.id: m for m in (_info(item) for item in listed) if m is not None}
        if not models:
            return False
        self._models = models
        self._choose_default()
        return True

    def _choose_default(self) -> None:
        configured = self._config.model
        previous, self._fallback = self._fallback, None
        if configured in self._models:
            return
        self._fallback = best_k2(self._models)
        if self._fallback is not None and self._fallback != previous:
            log.warning("the configured model is not available to this Kimi account; using another one",
                        extra={"configured": configured, "using": self._fallback, "available": self.ids()})

    @property
    def default(self) -> str:
        return self._fallback or self._config.model

    def ids(self) -> list[str]:
        return sorted(self._models)

    def allows(self, model: str) -> bool:
        return not self._models or model in self._models

    def get(self, model: str) -> ModelInfo | None:
        return self._models.get(model)

    def context_window(self, model: str) -> int:
        info = self._models.get(model)
        return info.context_length if info is not None and info.context_length else self._config.context_window


def best_k2(models: dict[str, ModelInfo]) -> str | None:
    """The newest plain K2 model (kimi-k2.6 over kimi-k2.5), else the newest Kimi model of any generation."""
    ranked = sorted(((_version(m), m) for m in models if _version(m) is not None), reverse=True)
    k2 = [m for version, m in ranked if version is not None and version[0] == 2]
    return k2[0] if k2 else (ranked[0][1] if ranked else None)


def _version(model: str) -> tuple[int, int] | None:
    match = _VERSION.match(model)
    return (int(match.group(1)), int(match.group(2) or 0)) if match else None


def _info(item: dict[str, Any]) -> ModelInfo | None:
    model_id = item.get("id")
    if not isinstance(model_id, str) or not model_id:
        return None
    length = item.get("context_length")
    return ModelInfo(model_id, context_length=length if isinstance(length, int) and length > 0 else None,
                     image_in=bool(item.get("supports_image_in", True)),
                     video_in=bool(item.get("supports_video_in", False)),
                     reasoning=bool(item.get("supports_reasoning", True)))
