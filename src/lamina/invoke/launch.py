"""What a new environment of a function version runs: Lambda's side of a start.

The runtime command (the catalog's, or a custom runtime's `bootstrap` from the code or a
layer), the standard Lambda environment variables, and the refusal AWS gives when a custom
runtime has no bootstrap at all. Pure functions of the configuration and the host paths;
nothing here starts anything.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from lamina.domain.model import FunctionConfig
from lamina.runtimeapi.channel import RuntimeReply
from lamina.runtimes.catalog import RuntimeLaunch
from lamina.runtimes.versions import runtime_version_arn
from lamina.sandbox.exits import ErrorType
from lamina.sandbox.protocols import SandboxRequest

TASK_BOOTSTRAP = ("/var/task/bootstrap",)
LAYER_BOOTSTRAP = ("/opt/bootstrap",)
NO_BOOTSTRAP = RuntimeReply(False, (
    b'{"errorType":"Runtime.InvalidEntrypoint","errorMessage":"Couldn\'t find valid bootstrap(s): '
    b'[/var/task/bootstrap /opt/bootstrap]"}'), ErrorType.INVALID_ENTRYPOINT)


def sandbox_request(cfg: FunctionConfig, launch: RuntimeLaunch | None, code_dir: Path, opt_dir: Path | None,
                    sandbox_id: str, bytecode: tuple[tuple[str, str], ...] = ()
                    ) -> tuple[SandboxRequest, RuntimeReply | None]:
    """The request for one new environment, and the init failure it must report instead of
    starting (None: start it)."""
    argv = _reenabled(launch.argv, cfg.environment.get("NODE_OPTIONS", "")) if launch else TASK_BOOTSTRAP
    # lexists: a bootstrap that is a symlink resolves inside the sandbox; following it on
    # the host would tell the function which host paths exist
    custom = launch is not None and launch.runtime_dir is None
    has_bootstrap = custom and os.path.lexists(code_dir / "bootstrap")  # only a custom runtime looks
    if custom and not has_bootstrap and opt_dir is not None and os.path.lexists(opt_dir / "bootstrap"):
        argv = LAYER_BOOTSTRAP  # a custom runtime may come from a layer
    refusal = NO_BOOTSTRAP if custom and argv == TASK_BOOTSTRAP and not has_bootstrap else None
    stream = time.strftime("%Y/%m/%d/", time.gmtime()) + f"[{cfg.version}]{sandbox_id}"
    request = SandboxRequest(
        id=sandbox_id, template=cfg.version_key, generation=cfg.generation, code_dir=code_dir, argv=argv,
        env=environment_variables(cfg, launch), instance_env={"AWS_LAMBDA_LOG_STREAM_NAME": stream},
        memory_mb=cfg.memory_size, tmp_mb=cfg.ephemeral_storage, opt_dir=opt_dir,
        runtime_dir=launch.runtime_dir if launch else None, root=launch.root if launch else None,
        init_log=init_log(cfg, launch), bytecode=bytecode,
        # a zygote runs the catalog's runtime: a custom bootstrap has none
        zygote_argv=launch.zygote_argv if launch is not None and argv == launch.argv else None,
    )
    return request, refusal


def _reenabled(argv: tuple[str, ...], node_options: str) -> tuple[str, ...]:
    """`argv` without the runtime's `--no-experimental-X` flags whose `--experimental-X` the
    function sets in NODE_OPTIONS: AWS drops a disable flag its function overrides."""
    enabled = set(node_options.split())
    return tuple(arg for arg in argv if not (arg.startswith("--no-experimental-") and f"--{arg[5:]}" in enabled))


def init_log(cfg: FunctionConfig, launch: RuntimeLaunch | None) -> str:
    """INIT_START, as AWS logs it at each cold start, naming the runtime version that really
    runs; when another runtime serves this one (no image of it here), a line saying so."""
    if launch is None or not launch.version:
        return ""
    served = launch.served_by or launch.name
    family = served.split(".")[0].rstrip("0123456789") if served.startswith("provided") else \
        served.rstrip(".x").rstrip("0123456789.")
    lines = f"INIT_START Runtime Version: {family}:{launch.version}.v{(launch.image_digest or '')[:8]}" \
            f"\tRuntime Version ARN: {runtime_version_arn(cfg.region, cfg.runtime or served, launch.image_digest)}\n"
    if launch.note:
        lines += f"Lamina: {launch.note} (the interpreter that runs is {family} {launch.version})\n"
    return lines


def environment_variables(cfg: FunctionConfig, launch: RuntimeLaunch | None) -> dict[str, str]:
    env = dict(cfg.environment)
    env.update({
        "AWS_LAMBDA_FUNCTION_NAME": cfg.name,
        "AWS_LAMBDA_FUNCTION_VERSION": cfg.version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(cfg.memory_size),
        "AWS_LAMBDA_LOG_GROUP_NAME": cfg.log_group_name,
        "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": cfg.region,
        "AWS_DEFAULT_REGION": cfg.region,
        "_HANDLER": cfg.handler or "",
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "TZ": ":UTC",
        "LANG": "en_US.UTF-8",
        "PATH": "/usr/local/bin:/usr/bin:/bin:/opt/bin",
        "LD_LIBRARY_PATH": "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:"
                           "/var/task/lib:/opt/lib",
    })
    if cfg.log_format == "JSON":
        env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
        env["AWS_LAMBDA_LOG_LEVEL"] = cfg.application_log_level or "INFO"
    if launch is not None:
        if launch.execution_env:
            env["AWS_EXECUTION_ENV"] = launch.execution_env
        env.update(dict(launch.extra_env))
    return env
