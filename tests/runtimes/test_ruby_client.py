"""Lamina's Ruby runtime client (`runtimes/ruby/bootstrap.rb`) against a tiny Runtime API.

The client's own contract: what it posts for a handler that returns, raises or cannot be
loaded, the `context` and environment it gives the handler, its log lines and exit codes, as
AWS's Ruby runtime (the aws_lambda_ric gem) has them. Runs the host's `ruby` the way Lamina
starts it (`ruby --disable-gems bootstrap.rb`, cwd the task root), and once with RubyGems
loaded at start. `LAMINA_TEST_RUBY` names another interpreter to test (any executable that
runs Ruby with the same arguments, environment and working directory).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lamina.runtimes.catalog import RUNTIME_FILES
from tests.runtimes.fake_runtime_api import ARN, FakeRuntimeApi

RUBY = os.environ.get("LAMINA_TEST_RUBY") or shutil.which("ruby")  # e.g. a wrapper running an image's ruby
BOOTSTRAP = RUNTIME_FILES / "ruby" / "bootstrap.rb"
pytestmark = pytest.mark.skipif(RUBY is None, reason="no `ruby` on this host (apt-get install ruby)")


@dataclass
class Started:
    api: FakeRuntimeApi
    proc: subprocess.Popen[bytes]
    task: Path
    started_at: float

    def exit_code(self, timeout: float = 10.0) -> int:
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        """Everything the runtime wrote, once it has exited (or after killing it)."""
        if self.proc.poll() is None:
            self.proc.kill()
        out, _ = self.proc.communicate(timeout=10)
        return out.decode()


Start = Callable[..., Started]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    started: list[Started] = []

    def run(files: dict[str, str], handler: str = "app.handler", env: dict[str, str] | None = None,
            gems: bool = False) -> Started:
        task = tmp_path / "task"
        for name, text in files.items():
            (task / name).parent.mkdir(parents=True, exist_ok=True)
            (task / name).write_text(text)
        api = FakeRuntimeApi().__enter__()
        environment = {
            "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TZ": ":UTC",
            "AWS_LAMBDA_RUNTIME_API": api.address, "_HANDLER": handler,
            "LAMBDA_TASK_ROOT": str(task), "LAMBDA_RUNTIME_DIR": str(BOOTSTRAP.parent),
            "AWS_LAMBDA_FUNCTION_NAME": "fn", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/12/03/[$LATEST]0123456789abcdef0123456789abcdef",
            "AWS_EXECUTION_ENV": "AWS_Lambda_ruby3.3", **(env or {}),
        }
        argv = [str(RUBY), str(BOOTSTRAP)] if gems else [str(RUBY), "--disable-gems", str(BOOTSTRAP)]
        proc = subprocess.Popen(argv, cwd=task, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        run_ = Started(api, proc, task, time.monotonic())
        started.append(run_)
        return run_

    yield run
    for run_ in started:
        if run_.proc.poll() is None:
            run_.proc.kill()
        run_.proc.communicate(timeout=10)
        run_.api.close()


HELLO = """
def handler(event:, context:)
  { 'echo' => event, 'class' => self.class.name }
end
"""


@pytest.mark.parametrize("gems", [False, True], ids=["lazy-rubygems", "rubygems-at-start"])
def test_handler_result_is_json_and_runtime_keeps_serving(start: Start, gems: bool) -> None:
    run = start({"app.rb": HELLO}, gems=gems)
    first = run.api.invoke({"a": [1, "two", None]})
    assert first.kind == "response"
    assert first.json() == {"echo": {"a": [1, "two", None]}, "class": "LambdaHandler"}
    second = run.api.invoke("just a string")
    assert second.json() == {"echo": "just a string", "class": "LambdaHandler"}
    assert run.api.connections == 1  # one keep-alive connection
    assert run.proc.poll() is None


def test_context_fields_and_environment(start: Start) -> None:
    run = start({"app.rb": """
def handler(event:, context:)
  {
    'request_id' => context.aws_request_id, 'arn' => context.invoked_function_arn,
    'name' => context.function_name, 'version' => context.function_version,
    'memory' => context.memory_limit_in_mb, 'group' => context.log_group_name,
    'stream' => context.log_stream_name, 'deadline' => context.deadline_ms,
    'remaining' => context.get_remaining_time_in_millis, 'identity' => context.identity,
    'client_context' => context.client_context, 'tenant' => context.tenant_id,
    'trace' => ENV['_X_AMZN_TRACE_ID'], 'context_class' => context.class.name,
    'load_path' => $LOAD_PATH.first(3), 'gem_path' => ENV['GEM_PATH'], 'cwd' => Dir.pwd,
    'global_request_id' => $_global_aws_request_id,
  }
end
"""})
    client_context = {"client": {"installation_id": "i-1"}, "custom": {"k": "v"}, "env": {"platform": "x"}}
    identity = {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}
    before = int(time.time() * 1000)
    result = run.api.invoke({}, headers={
        "Lambda-Runtime-Client-Context": json.dumps(client_context),
        "Lambda-Runtime-Cognito-Identity": json.dumps(identity),
        "Lambda-Runtime-Aws-Tenant-Id": "tenant-7",
    })
    body = result.json()
    assert body["request_id"] == result.request_id == body["global_request_id"]
    assert body["arn"] == ARN
    assert (body["name"], body["version"], body["memory"]) == ("fn", "$LATEST", "128")
    assert body["group"] == "/aws/lambda/fn"
    assert body["stream"] == "2026/12/03/[$LATEST]0123456789abcdef0123456789abcdef"
    assert before + 25_000 < body["deadline"] < before + 35_000
    assert 20_000 < body["remaining"] <= 30_000
    assert body["identity"] == identity
    assert body["client_context"] == client_context
    assert body["tenant"] == "tenant-7"
    assert body["trace"].startswith("Root=1-5bef4de7-")
    assert body["context_class"] == "LambdaContext"
    task = str(run.task)
    assert body["load_path"] == [task, str(BOOTSTRAP.parent / "lib"), "/opt/ruby/lib"]
    version = body["gem_path"].rsplit("/", 1)[1]
    assert re.fullmatch(r"\d+\.\d+\.0", version)
    assert body["gem_path"] == f"{task}/vendor/bundle/ruby/{version}:/opt/ruby/gems/{version}"
    assert body["cwd"] == task
    # a request without the optional headers has none of their fields
    plain = run.api.invoke({}, headers={"Lambda-Runtime-Trace-Id": ""}).json()
    assert (plain["identity"], plain["client_context"], plain["tenant"]) == (None, None, None)


def test_module_class_handler(start: Start) -> None:
    run = start({"lib/source.rb": """
module LambdaFunctions
  class Handler
    def self.process(event:, context:)
      "Hello #{event['name']}!"
    end
  end
end
"""}, handler="lib/source.LambdaFunctions::Handler.process")
    assert run.api.invoke({"name": "Ruby"}).json() == "Hello Ruby!"


def test_handler_error_shape_and_header(start: Start) -> None:
    run = start({"app.rb": """
class MyError < StandardError; end
def argument(event:, context:)
  raise ArgumentError, 'bad argument'
end
def custom(event:, context:)
  [1, 2, 3].each { |i| raise MyError, "custom #{i}" if i == 2 }
end
"""}, handler="app.argument")
    error = run.api.invoke({})
    assert error.kind == "error"
    body = error.json()
    assert list(body) == ["errorMessage", "errorType", "stackTrace"]
    assert body["errorMessage"] == "bad argument"
    assert body["errorType"] == "Function<ArgumentError>"
    assert error.headers["lambda-runtime-function-error-type"] == "Function<ArgumentError>"
    assert len(body["stackTrace"]) == 1
    assert re.fullmatch(rf"{re.escape(str(run.task))}/app.rb:4:in [`'](Object#)?argument'", body["stackTrace"][0])
    # the runtime carries on after a handler error
    assert run.api.invoke({}).kind == "error"
    assert run.proc.poll() is None
    out = run.output()
    assert out.count("Error raised from handler method\n") == 2
    assert '"errorType": "Function<ArgumentError>",\n' in out  # JSON.pretty_generate, as AWS logs it


def test_error_class_outside_the_reported_list_is_a_user_exception(start: Start) -> None:
    run = start({"app.rb": """
class MyError < StandardError; end
def handler(event:, context:)
  [1, 2, 3].each { |i| raise MyError, "custom #{i}" if i == 2 }
end
"""})
    error = run.api.invoke({})
    body = error.json()
    assert body["errorType"] == "Function<MyError>"
    assert body["errorMessage"] == "custom 2"
    assert error.headers["lambda-runtime-function-error-type"] == "Function<UserException>"
    assert all(frame.startswith(str(run.task)) for frame in body["stackTrace"])
    assert len(body["stackTrace"]) >= 3  # block, each, handler


def test_no_method_error_is_critical_and_the_runtime_exits(start: Start) -> None:
    run = start({"app.rb": "def handler(event:, context:)\n  nil.upcase\nend\n"})
    error = run.api.invoke({})
    body = error.json()
    assert body["errorType"] == "Function<NoMethodError>"
    assert "upcase" in body["errorMessage"]
    assert error.headers["lambda-runtime-function-error-type"] == "Function<NoMethodError>"
    assert run.exit_code() == 255  # AWS's exit(-1)
    assert "Critical exception from handler\n" in run.output()


def test_missing_handler_method_fails_at_first_invoke(start: Start) -> None:
    run = start({"app.rb": HELLO}, handler="app.nope")
    error = run.api.invoke({})
    body = error.json()
    assert body["errorType"] == "Function<NoMethodError>"
    assert re.match(r"undefined method [`']nope' for (an instance of LambdaHandler|#<LambdaHandler)",
                    body["errorMessage"])
    assert run.exit_code() == 255


@pytest.mark.parametrize(("files", "handler", "error_type", "header", "message"), [
    ({"app.rb": "raise 'no config'\n"}, "app.handler", "Init<RuntimeError>", "Function<UserException>",
     "no config"),
    ({"app.rb": HELLO}, "missing.handler", "Init<LoadError>", "Init<LoadError>",
     "cannot load such file -- missing"),
    ({"app.rb": "require 'not_a_gem_anywhere'\n"}, "app.handler", "Init<LoadError>", "Init<LoadError>",
     "cannot load such file -- not_a_gem_anywhere"),
    ({"app.rb": "def handler(event:, context:\n"}, "app.handler", "Init<SyntaxError>", "Function<UserException>",
     None),
    ({"app.rb": HELLO}, "a.b.c.d", "Init<ArgumentError>", "Init<ArgumentError>",
     'Invalid handler ["a", "b", "c", "d"], must be of form FILENAME.METHOD or FILENAME.CLASS.METHOD where '
     "FILENAME corresponds with an existing Ruby source file FILENAME.rb, CLASS is an optional module/class "
     "namespace and METHOD is a callable method. If using CLASS, METHOD must be a class-level method."),
    ({"app.rb": HELLO}, "", "Init<ArgumentError>", "Init<ArgumentError>", None),
], ids=["raises", "missing-file", "missing-require", "syntax-error", "malformed-handler", "empty-handler"])
def test_init_errors(start: Start, files: dict[str, str], handler: str, error_type: str, header: str,
                     message: str | None) -> None:
    run = start(files, handler=handler)
    posted = run.api.posted()
    assert posted.kind == "init_error"
    body = posted.json()
    assert list(body) == ["errorMessage", "errorType", "stackTrace"]
    assert body["errorType"] == error_type
    assert posted.headers["lambda-runtime-function-error-type"] == header
    if message is not None:
        assert body["errorMessage"] == message
    assert not any("bootstrap.rb" in frame for frame in body["stackTrace"])
    assert run.exit_code() == 252  # AWS's exit(-4)
    assert run.api.next_count == 0
    assert f"Init error when loading handler {handler}\n" in run.output()


def test_init_error_trace_keeps_the_functions_frames(start: Start) -> None:
    run = start({"app.rb": "require_relative 'lib/helper'\n", "lib/helper.rb": "def boom\n  raise 'x'\nend\nboom\n"})
    trace = run.api.posted().json()["stackTrace"]
    places = [frame.split(":in")[0] for frame in trace]
    assert places[:2] == [f"{run.task}/lib/helper.rb:2", f"{run.task}/lib/helper.rb:4"]
    assert set(places[2:]) == {f"{run.task}/app.rb:1"}  # with its require_relative frame on some Rubies


def test_logging_puts_and_logger(start: Start) -> None:
    run = start({"app.rb": """
require 'logger'
LOGGER = Logger.new($stdout)
puts 'at init'
def handler(event:, context:)
  puts 'in handler'
  LOGGER.info('## EVENT')
  LOGGER.warn(event)
  Logger.new($stderr, progname: 'mine').error('to stderr')
  Logger.new($stdout, formatter: proc { |sev, _t, _p, msg| "#{sev}: #{msg}\\n" }).info('custom')
  $stderr.puts 'stderr line'
  1
end
"""})
    result = run.api.invoke({"key1": "value1"})
    assert result.json() == 1
    lines = run.output().splitlines()
    rid = re.escape(result.request_id or "")
    stamp = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}"
    assert lines[0] == "at init"
    assert lines[1] == "in handler"
    assert re.fullmatch(rf"I, \[{stamp} #\d+\]  INFO {rid} -- : ## EVENT", lines[2]), lines[2]
    assert re.fullmatch(rf'W, \[{stamp} #\d+\]  WARN {rid} -- : {{"key1"\s?=>\s?"value1"}}', lines[3]), lines[3]
    assert re.fullmatch(rf"E, \[{stamp} #\d+\] ERROR {rid} -- mine: to stderr", lines[4]), lines[4]
    assert lines[5:7] == ["INFO: custom", "stderr line"]


def test_logger_without_require_is_available(start: Start) -> None:
    run = start({"app.rb": "def handler(event:, context:)\n  Logger.new(nil).info('via autoload')\n  2\nend\n"})
    result = run.api.invoke({})
    assert result.json() == 2
    assert re.search(rf"INFO {re.escape(result.request_id or '')} -- : via autoload\n", run.output())


def test_stringio_result_is_sent_as_is_and_strings_as_json(start: Start) -> None:
    run = start({"app.rb": """
def raw(event:, context:)
  StringIO.new("not json \\xff".b)
end
"""}, handler="app.raw")
    result = run.api.invoke({})
    assert result.body == b"not json \xff"
    assert result.headers["content-type"] == "application/unknown"


def test_non_json_event_is_given_as_a_string(start: Start) -> None:
    run = start({"app.rb": "def handler(event:, context:)\n  event\nend\n"})
    assert run.api.invoke(raw=b"plain text", headers={"Content-Type": "text/plain"}).json() == "plain text"


def test_gems_load_lazily_from_gem_path(start: Start, tmp_path: Path) -> None:
    gems = tmp_path / "gems"
    (gems / "gems" / "tiny-1.0" / "lib").mkdir(parents=True)
    (gems / "gems" / "tiny-1.0" / "lib" / "tiny.rb").write_text("module Tiny; VALUE = 42; end\n")
    (gems / "specifications").mkdir()
    (gems / "specifications" / "tiny-1.0.gemspec").write_text(
        "Gem::Specification.new { |s| s.name = 'tiny'; s.version = '1.0'; s.summary = 't'; s.authors = ['a']; "
        "s.files = ['lib/tiny.rb'] }\n")
    run = start({"app.rb": """
LOADED_AT_INIT = $LOADED_FEATURES.any? { |f| f.end_with?('/rubygems.rb') }
def handler(event:, context:)
  before = $LOADED_FEATURES.any? { |f| f.end_with?('/rubygems.rb') }
  require 'tiny'
  { 'init' => LOADED_AT_INIT, 'before' => before, 'value' => Tiny::VALUE,
    'gem' => Gem.loaded_specs['tiny'].version.to_s, 'uri' => URI('http://example.com/a').path,
    'net' => Net::HTTP.name }
end
"""}, env={"GEM_PATH": str(gems)})
    assert run.api.invoke({}).json() == {"init": False, "before": False, "value": 42, "gem": "1.0", "uri": "/a",
                                         "net": "Net::HTTP"}


def test_function_files_cannot_replace_the_runtimes_libraries(start: Start) -> None:
    run = start({"app.rb": "def handler(event:, context:)\n  JSON.generate([1])\nend\n",
                 "json.rb": "raise 'the runtime loaded the function json.rb'\n"})
    assert run.api.invoke({}).json() == "[1]"


def test_reconnects_when_the_api_closes_the_connection(start: Start) -> None:
    run = start({"app.rb": HELLO})
    run.api.close_after_each = True
    assert run.api.invoke(1).json()["echo"] == 1
    run.api.close_after_each = False
    run.api.drop_after_post = True
    assert run.api.invoke(2).json()["echo"] == 2
    assert run.api.invoke(3).json()["echo"] == 3
    assert run.api.connections >= 3
    assert run.proc.poll() is None


def test_exits_when_the_api_is_gone(start: Start) -> None:
    run = start({"app.rb": HELLO})
    assert run.api.invoke(1).kind == "response"
    run.api.close()
    assert run.exit_code() == 1
    assert "Lamina runtime: lost the Runtime API" in run.output()


def test_starts_without_loading_rubygems_quickly(start: Start) -> None:
    """A loose bound (a loaded CI machine); bench/ and the report give the measured figures."""
    run = start({"app.rb": HELLO})
    run.api.invoke({})
    assert run.api.first_next_at is not None
    assert run.api.first_next_at - run.started_at < 2.0


def test_error_with_invalid_bytes_is_still_reported(start: Start) -> None:
    run = start({"app.rb": "def handler(event:, context:)\n  raise \"bad \\xff bytes\".b\nend\n"})
    error = run.api.invoke({})
    assert error.kind == "error"
    assert error.json()["errorType"] == "Function<RuntimeError>"
    assert error.json()["errorMessage"].startswith("bad ")
    assert run.proc.poll() is None
