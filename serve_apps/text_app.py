"""``POST /v1/text``: the text analyzer behind dynamic batching and autoscaling.

    serve run serve_apps.text_app:build_app model_uri=models:/modera-text@champion

Settings that change in operation (model URI, batch size, batch wait) travel through ``user_config``
and ``reconfigure``, so a promotion needs no redeploy.
"""


import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field
from ray import serve

from modera import registry
from modera.analyzers.text import TextAnalyzer
from modera.api import RootWithoutSlash
from modera.api.body import read_body
from modera.api.errors import error_body, install_error_handlers
from modera.api.text import TextLimits, TextRequest, TextResponse, parse_text_request
from modera.errors import NotReady
from modera.runtime import configure_registry
from modera.schemas import Result, TextContent
from modera.settings import load_settings

logger = logging.getLogger("serve_apps.text_app")

api = FastAPI(
    title="Modera text moderation",
    version="1",
    description="Scores text per moderation category (score 0-1, severity 0-3), with language and entities.",
)
install_error_handlers(api)
api.add_middleware(RootWithoutSlash)


class TextAppArgs(BaseModel):
    """Typed arguments of the text application (``serve run ... key=value`` or config.yaml ``args``)."""

    model_uri: str = "models:/modera-text@champion"
    max_batch_size: int = Field(default=32, ge=1, le=1024)
    batch_wait_timeout_s: float = Field(default=0.01, ge=0, le=5)
    limits: TextLimits = TextLimits()
    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=2, ge=1)
    target_ongoing_requests: float = Field(default=32, gt=0)
    num_cpus: float = Field(default=1.0, gt=0)
    torch_threads: int | None = Field(default=None, ge=1)
    poll_interval_s: float = Field(default=10.0, ge=0, description="alias polling period; 0 turns polling off")


# Module-level helpers the deployment uses must be defined above it: @serve.deployment serialises the
# class when the module is imported, and a name defined further down is then missing in the replica.
def _resolved_version(uri: str) -> str | None:
    try:
        return registry.get_version(uri).version if uri.startswith("models:/") else None
    except Exception:  # noqa: BLE001 - only used to avoid retry loops
        return None


@serve.deployment(ray_actor_options={"num_cpus": 1})
@serve.ingress(api)
class TextDeployment:
    """One replica: one loaded text model, requests scored in dynamic batches."""

    def __init__(self, limits: dict, torch_threads: int | None = None) -> None:
        import torch

        # One inference thread. OpenMP thread counts are per thread, so the count is set inside it
        # (a plain asyncio.to_thread worker would run torch on a single core).
        threads = torch_threads or torch.get_num_threads()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="infer", initializer=torch.set_num_threads,
                                            initargs=(threads,))
        settings = load_settings()
        configure_registry(settings)
        self._limits = TextLimits.model_validate(limits)
        self._analyzer = TextAnalyzer(cache_dir=settings.resolved_data_dir / "model_cache")
        self._model_uri: str | None = None
        self._load_error: str | None = None
        self._failed_version: str | None = None  # not retried at every poll
        self._poll_interval_s = 10.0
        self._poll_error: str | None = None
        self._last_poll: float | None = None
        self._load_lock = threading.Lock()
        threading.Thread(target=self._poll_forever, name="alias-poll", daemon=True).start()

    def reconfigure(self, user_config: dict) -> None:
        """Apply batch settings and (re)load the model; a failed load keeps the old model serving."""
        self._batch.set_max_batch_size(int(user_config.get("max_batch_size", 32)))
        self._batch.set_batch_wait_timeout_s(float(user_config.get("batch_wait_timeout_s", 0.01)))
        self._poll_interval_s = float(user_config.get("poll_interval_s", self._poll_interval_s))
        uri = user_config.get("model_uri", self._model_uri)
        if uri and uri != self._model_uri:
            self._load(uri)

    def _load(self, uri: str) -> None:
        """Load ``uri`` next to the serving model and swap only when it works (requests never wait)."""
        with self._load_lock:
            started = time.perf_counter()
            self._model_uri = uri
            try:
                ref = self._analyzer.load(uri)
                self._analyzer.analyze_batch([TextContent(text="warm up")])
            except Exception as exc:  # noqa: BLE001 - any load failure must leave the replica serving
                self._load_error = f"loading {uri} failed: {exc}"
                self._failed_version = _resolved_version(uri)
                logger.exception("model load failed; still serving %s", self._analyzer.model_ref)
                return
            self._load_error, self._failed_version = None, None
            logger.info("serving %s v%s (loaded in %.1fs)", ref.name, ref.version, time.perf_counter() - started)

    def _poll_forever(self) -> None:
        """Follow the alias: a promotion or rollback (CLI, API or MLflow UI) reaches every replica."""
        while True:
            time.sleep(self._poll_interval_s or 1.0)
            try:
                self._poll_once()
            except Exception as exc:  # noqa: BLE001 - the poller must outlive any one failure
                logger.exception("alias poll failed")
                self._poll_error = f"{exc.__class__.__name__}: {exc}"

    def _poll_once(self) -> None:
        uri = self._model_uri
        if not self._poll_interval_s or not uri or not uri.startswith("models:/") or "@" not in uri:
            return
        try:
            latest = registry.get_version(uri).version
            self._poll_error, self._last_poll = None, time.time()
        except Exception as exc:  # noqa: BLE001 - an unreachable registry must not stop serving
            self._poll_error = f"{exc.__class__.__name__}: {exc}"
            return
        current = self._analyzer.model_ref
        if current is not None and current.version == latest:
            self._load_error = self._failed_version = None  # the alias came back to what we serve
        elif latest != self._failed_version:
            logger.info("%s now points to v%s (serving %s); loading", uri, latest, current and current.version)
            self._load(uri)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.01)
    async def _batch(self, items: list[TextContent]) -> list[Result]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._analyzer.analyze_batch, items)

    @api.post(
        "/",
        response_model=TextResponse,
        summary="Score one text or a list of texts",
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": TextRequest.model_json_schema()}}}},
    )
    async def moderate(self, request: Request) -> TextResponse:
        body = await read_body(request, self._limits.max_body_bytes)
        items = parse_text_request(body, request.headers.get("content-type"), self._limits)
        if self._analyzer.model_ref is None:
            raise NotReady(self._load_error or "no model loaded yet")
        results = await asyncio.gather(*(self._batch(item) for item in items))
        return TextResponse(results=list(results))

    @api.get("/healthz", summary="Readiness: the loaded model, or why none is")
    async def healthz(self):
        from fastapi.responses import JSONResponse

        ref = self._analyzer.model_ref
        body = {"status": "ok" if ref else "not_ready", "model": ref.model_dump() if ref else None,
                "model_uri": self._model_uri, "load_error": self._load_error,
                "replica": serve.get_replica_context().replica_id.unique_id,
                "poll_error": self._poll_error, "last_poll": self._last_poll}
        if ref is None:
            return JSONResponse(body | error_body("not_ready", self._load_error or "no model loaded"), status_code=503)
        return body


def build_app(args: TextAppArgs | dict):
    """Typed app builder: ``serve run serve_apps.text_app:build_app`` or config.yaml ``import_path``."""
    args = TextAppArgs.model_validate(args) if isinstance(args, dict) else args
    return TextDeployment.options(
        max_ongoing_requests=max(2 * args.max_batch_size, 8),
        autoscaling_config={
            "min_replicas": args.min_replicas,
            "initial_replicas": max(args.min_replicas, 1),
            "max_replicas": args.max_replicas,
            "target_ongoing_requests": args.target_ongoing_requests,
            "upscale_delay_s": 5,
            "downscale_delay_s": 60,
        },
        ray_actor_options={"num_cpus": args.num_cpus},
        user_config={"model_uri": args.model_uri, "max_batch_size": args.max_batch_size,
                     "batch_wait_timeout_s": args.batch_wait_timeout_s, "poll_interval_s": args.poll_interval_s},
    ).bind(limits=args.limits.model_dump(), torch_threads=args.torch_threads)
