"""Settings from PLAYGROUND_* environment variables, including every server limit."""
from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.engine.bounds import DEFAULT as DERIVE

DEFAULT_STORE = "sqlite:///data/playground.sqlite3"  # relative to the working directory


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PLAYGROUND_")

    store: str = Field(DEFAULT_STORE, description="memory:// or sqlite:///path")
    max_layers: int = Field(12, description="layers per network, output layer included")
    max_units: int = Field(1024, description="units per layer")
    max_params: int = Field(2_000_000, description="weights and biases per network")
    max_samples_x_features: int = Field(2_000_000, description="rows x input columns of train + test data")
    max_steps: int = Field(100_000, description="steps per train call")
    # One step is about 3 multiply-adds per weight and row (forward, backward, update), all in one call that
    # cannot be split: here NumPy does 3e9-1e10 of this cost a second, so 1e8 is a 10-30 ms step, one 30 fps
    # frame, while a 2M-weight net on 80,000 full-batch rows (1.6e11) held every stream in the process 13 s.
    # 10 rows x 2M weights (2e7) and a full batch of 1M rows on the default 2-4-1 net pass.
    max_step_cost: int = Field(100_000_000, ge=1, description="rows per training step (the batch, or every "
                               "training row for a full batch) x weights of the network")
    max_body_bytes: int = Field(16 * 1024 * 1024, description="request body size")
    # bodies this large are decoded in a worker thread, a bounded number at a time
    large_body_bytes: int = Field(1024 * 1024, ge=1, description="a JSON body this large is a large body")
    max_large_bodies: int = Field(2, ge=1, description="large bodies in work at once per process (then 503)")
    train_time_budget: float = Field(20.0, description="wall-clock seconds per train call")
    max_models: int = Field(10_000, description="stored models")
    at_model_limit: Literal["evict", "refuse"] = Field(
        "evict", description="evict the least recently used model, or refuse with 507")
    max_resolution: int = Field(200, description="boundary grid resolution")
    max_rows: int = Field(10_000, description="rows of X per predict / gradients / check call")
    max_csv_rows: int = Field(100_000, description="rows of an uploaded CSV")
    gradients_default_rows: int = Field(32, description="training rows used by gradients with no body")
    gradcheck_max_entries: int = Field(64, description="entries checked per tensor by gradcheck")
    stream_fps: float = Field(30.0, description="maximum stream frames per second")
    save_interval: float = Field(2.0, description="seconds between saves while streaming")
    cache_size: int = Field(256, description="live models kept in memory per process")
    admin_token: str = Field("", description="enables the instructor view at /class when set")
    rate_limit_per_client: int = Field(20_000, description="requests a minute per client address (0: off); a whole class may share one NAT address")
    rate_limit_per_token: int = Field(3000, description="requests a minute per bearer token (0: off)")
    cors_origins: list[str] = Field([], description="origins allowed cross-site; empty: same origin only")
    checkpoint_every: int = Field(100, description="steps between automatic checkpoints (0: off)")
    checkpoints_kept: int = Field(50, description="newest checkpoints kept per model")
    # per-row quantities are the bulk of a gradients response, so they are bounded
    max_gradient_values: int = Field(
        1_000_000, description="numbers of per-row a, z, delta and dz one gradients call returns (rows x 4 x units)")

    # -- service layer: locks, leases, eviction, store health, storage budgets --
    lock_timeout: float = Field(25.0, gt=0, description="seconds a call waits for a model's lock before a 503 "
                                                        "with Retry-After")
    lease_ttl: float = Field(10.0, gt=0, description="seconds a playing stream's lease on its model lasts unless "
                                                     "renewed (a crashed process frees it after this)")
    lease_wait: float = Field(2.0, ge=0, description="seconds a writer waits for a stream in another process to "
                                                     "pause before a 409")
    touch_interval: float = Field(5.0, ge=0, description="seconds between recorded uses of one model (reads count)")
    protect_recent_seconds: float = Field(600.0, ge=0, description="a model used this recently is never evicted "
                                                                   "for someone else's new model (507 instead)")
    max_models_per_client: int = Field(1000, ge=0, description="stored models created from one client address "
                                                               "(0: no quota); 429 past it")
    cache_bytes: int = Field(512 * 1024 * 1024, gt=0, description="bytes of live models kept in memory per process")
    max_datasets: int = Field(200, ge=1, description="uploaded datasets kept; the oldest is evicted past it")
    max_dataset_bytes: int = Field(256 * 1024 * 1024, ge=1, description="bytes of uploaded datasets kept in all "
                                                                         "(8 per value); the oldest evicted past it")
    history_max_points: int = Field(2000, ge=2, description="points GET /history returns when the client names "
                                                            "no max_points")
    gradcheck_max_cost: int = Field(2_000_000_000, ge=1, description="rows x checked entries x parameters per "
                                                                      "gradcheck: training rows and entries are "
                                                                      "capped to fit, more sent rows are a 422")
    checkpoint_bytes_per_model: int = Field(64 * 1024 * 1024, ge=0, description="checkpoint bytes kept per model, "
                                                                                "oldest pruned first (0: no budget)")

    # -- stored bytes: model records and their checkpoints, counted by every store backend (datasets have their
    # own budget above); a write past either bound is a 507 that stores nothing
    max_bytes_per_client: int = Field(1024 ** 3, ge=0, description="bytes of models and checkpoints stored for "
                                      "the models one client address created (0: no quota); 507 past it")
    max_store_bytes: int = Field(4 * 1024 ** 3, ge=0, description="bytes of models and checkpoints stored in all "
                                 "(0: no bound); 507 past it")

    # -- your own gradients and equations (/check, /derive) ---------------------------------
    check_max_entries: int = Field(1_000_000, description="numbers in one dW or db sent to /check")
    derive_max_equations: int = Field(DERIVE.max_equations, description="equations per /derive call")
    derive_max_expr_length: int = Field(DERIVE.max_expr_chars, description="characters per /derive expression")
    derive_max_rows: int = Field(256, description="rows of X per /derive call (columns: every sample at once, "
                                 "stacked)")
    derive_max_bytes: int = Field(DERIVE.max_bytes, ge=1, description="bytes of values one /derive call holds "
                                  "at once, from the shapes before any is made (422 naming the equation past it)")
    derive_max_cost: int = Field(DERIVE.max_cost, ge=1, description="multiply-adds and entries one /derive call "
                                 "computes, its CPU budget (422 naming the equation past it); its repair search "
                                 "has as much again, and stops with a note past it")
    derive_max_code_chars: int = Field(20_000, ge=1, description="characters of the code one /derive call takes "
                                       "(422 past it)")
    derive_max_code_depth: int = Field(40, ge=1, description="nesting levels (brackets, indentation) of /derive's "
                                       "code, checked before it is parsed (422 past it)")
    derive_max_code_iterations: int = Field(10_000, ge=1, description="loop and comprehension iterations of one "
                                            "/derive code run, in all (422 past it)")
    # -- per-client fairness: concurrency caps, enforced by app/api/fairness.py; 0 turns one off
    concurrent_per_client: int = Field(4, ge=0, description="expensive calls (train, gradcheck, boundary, predict, "
                                       "gradients, check, derive, create, import, export, ...) at once per client address")
    concurrent_per_token: int = Field(2, ge=0, description="expensive calls at once per model token")
    concurrent_heavy: int = Field(4, ge=0, description="derive, check and gradcheck calls at once in one process, "
                                  "a part of concurrent_expensive, so a few students' heavy calls leave the rest "
                                  "to the class's train, predict and create (then 503)")
    streams_per_client: int = Field(4, ge=0, description="open streams per client address")
    streams_per_token: int = Field(2, ge=0, description="open streams per model token")
    concurrent_expensive: int = Field(16, ge=0, description="expensive calls at once in one process; below "
                                      "worker_threads, so cheap reads always find a thread")
    worker_threads: int = Field(40, ge=2, le=1000, description="threads that run the sync routes (anyio's default "
                                "thread limiter, set at startup)")
    busy_wait: float = Field(3.0, ge=0, le=60, description="seconds an expensive call waits for its slots (address, "
                             "token, process) before 429 or 503")

    @model_validator(mode="after")
    def _reads_keep_a_thread(self) -> "Settings":
        if self.concurrent_expensive and self.concurrent_expensive >= self.worker_threads:
            raise ValueError(f"concurrent_expensive ({self.concurrent_expensive}) must be below worker_threads "
                             f"({self.worker_threads}), so cheap reads always find a thread")
        return self
    # -- HTTP connections (app/server.py): bounds on a connection before any request reaches the app --
    http_max_header_bytes: int = Field(32 * 1024, ge=1024, description="bytes of a request line and headers; "
                                       "more is a 431 and the connection closes")
    http_header_timeout: float = Field(10.0, gt=0, description="seconds to send a whole request line and headers "
                                       "once a connection opens or a request starts; then 408 and close")
    http_body_timeout: float = Field(60.0, gt=0, description="seconds a whole request body may take, however it "
                                     "trickles; then 408 and close")
    http_idle_timeout: float = Field(30.0, gt=0, description="seconds a request body may pause between bytes; "
                                     "then 408 and close")
    http_keep_alive: float = Field(5.0, gt=0, description="seconds an idle keep-alive connection stays open "
                                   "between requests")
    connections_per_client: int = Field(256, ge=0, description="open connections (streams included) per client "
                                        "TCP address; more are a 429 and closed; a trusted proxy is exempt (0: off)")
    # 32 addresses at their cap before the process is full: a few students cannot fill it
    max_connections: int = Field(8192, ge=1, description="open connections per process; more are a 503 and closed")
    # -- processes (app/server.py): `playground serve` and the image start this many workers --
    workers: int | None = Field(None, ge=1, le=256, description="server processes on one store (one listening "
                                "socket); default: one per CPU this process may use; the memory store takes 1")
    # -- the class: the instructor's gallery of decision boundaries --
    gallery_max_models: int = Field(60, ge=1, description="models per GET /api/class/gallery (most recently updated first)")
    gallery_max_resolution: int = Field(48, ge=2, description="boundary grid resolution per gallery tile")
    gallery_max_points: int = Field(200, ge=0, description="training points per gallery tile")


@lru_cache
def get_settings() -> Settings:
    return Settings()
