/**
 * Lamina's Node.js runtime: runs inside the sandbox and speaks the Lambda Runtime API.
 *
 * Started as `node /var/runtime/bootstrap.mjs` with cwd /var/task. It loads the handler
 * named by `_HANDLER` (CommonJS or ES module), then loops on `GET /invocation/next` and
 * answers each event with `POST …/response` or `…/error`, giving the handler the same
 * event, context, callback semantics, console format and error bodies as AWS Lambda's
 * managed nodejs runtimes.
 *
 * Runs on Node.js 18, 20, 22 and 24. CommonJS handlers find the runtime's SDK and layers through
 * NODE_PATH as Node gives it; ES modules find them too (esm_node_path.mjs), as on AWS.
 *
 * Invariants: no npm dependencies; one keep-alive connection to the Runtime API, whose
 * idle socket never keeps the event loop alive (so `callbackWaitsForEmptyEventLoop`
 * works through `beforeExit`); console output is written synchronously, so it lands in
 * the log before the result is posted.
 */

import module, { createRequire } from "node:module";

const RUNTIME_DIR = process.env.LAMBDA_RUNTIME_DIR || "/var/runtime";
const TASK_ROOT = process.env.LAMBDA_TASK_ROOT || "/var/task";
const ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type";
// Module resolution errors name the runtime's entry file as AWS's runtime does.
const require = createRequire(`${RUNTIME_DIR}/index.mjs`);
// Node's built-in modules come through `require`: on Node 22 and 24, `import` of node:http and
// its neighbours costs every cold start about 45 ms more CPU than `require` of the same modules.
const http = require("node:http");
const fs = require("node:fs");
const path = require("node:path");
const util = require("node:util");
const { Writable } = require("node:stream");

// --- errors ------------------------------------------------------------------------------------------

class RuntimeError extends Error {}
const errorClass = (name) => {
  const cls = { [name]: class extends RuntimeError {} }[name];
  cls.prototype.name = `Runtime.${name}`;
  return cls;
};
const ImportModuleError = errorClass("ImportModuleError");
const HandlerNotFound = errorClass("HandlerNotFound");
const MalformedHandlerName = errorClass("MalformedHandlerName");
const UserCodeSyntaxError = errorClass("UserCodeSyntaxError");
const MalformedStreamingHandler = errorClass("MalformedStreamingHandler");
class UnhandledPromiseRejection extends Error {
  constructor(reason, promise) {
    super(reason);
    this.reason = reason;
    this.promise = promise;
  }
}
UnhandledPromiseRejection.prototype.name = "Runtime.UnhandledPromiseRejection";

const isErrorLike = (obj) =>
  obj && typeof obj.name === "string" && typeof obj.message === "string" && typeof obj.stack === "string"
  && obj.name && obj.message && obj.stack;

/** The body AWS's runtime posts for an error: {errorType, errorMessage, trace}. */
function toRapidResponse(error) {
  try {
    if (util.types.isNativeError(error) || isErrorLike(error)) {
      return {
        errorType: error.name?.replace(/\x7F/g, "%7F"),
        errorMessage: error.message?.replace(/\x7F/g, "%7F"),
        trace: error.stack.replace(/\x7F/g, "%7F").split("\n"),
      };
    }
    return { errorType: typeof error, errorMessage: error.toString(), trace: [] };
  } catch {
    return {
      errorType: "handled",
      errorMessage: "callback called with Error argument, but there was a problem while retrieving one or more "
        + "of its message, name, and stack",
    };
  }
}

const intoError = (err) => (err instanceof Error ? err : new Error(err));

function withEnumerableProperties(value) {
  if (!(value instanceof Error)) return value;
  const out = Object.assign({ errorType: value.name, errorMessage: value.message, code: value.code }, value);
  if (typeof value.stack === "string") out.stack = value.stack.split("\n");
  return out;
}

function toFormatted(error) {
  try {
    return "\t" + JSON.stringify(error, (_key, value) => withEnumerableProperties(value));
  } catch {
    return "\t" + JSON.stringify(toRapidResponse(error));
  }
}

// --- console ---------------------------------------------------------------------------------------------

const REQUEST_ID = Symbol.for("aws.lambda.runtime.requestId");
const TENANT_ID = Symbol.for("aws.lambda.runtime.tenantId");
const LEVELS = Object.freeze({
  TRACE: { name: "TRACE", priority: 1 },
  DEBUG: { name: "DEBUG", priority: 2 },
  INFO: { name: "INFO", priority: 3 },
  WARN: { name: "WARN", priority: 4 },
  ERROR: { name: "ERROR", priority: 5 },
  FATAL: { name: "FATAL", priority: 6 },
});
const JSON_LOGS = process.env.AWS_LAMBDA_LOG_FORMAT?.toUpperCase() === "JSON";

function jsonErrorReplacer(_key, value) {
  if (value instanceof Error) {
    return Object.assign({
      errorType: value?.constructor?.name ?? "UnknownError",
      errorMessage: value.message,
      stackTrace: typeof value.stack === "string" ? value.stack.split("\n") : value.stack,
    }, value);
  }
  return value;
}

function formatJson(level, message, params) {
  const result = { timestamp: new Date().toISOString(), level: level.name, requestId: globalThis[REQUEST_ID] };
  const tenantId = globalThis[TENANT_ID];
  if (tenantId !== undefined && tenantId !== null) result.tenantId = tenantId;
  if (params.length === 0) {
    result.message = message;
    try {
      return JSON.stringify(result, jsonErrorReplacer);
    } catch {
      result.message = util.format(result.message);
      return JSON.stringify(result);
    }
  }
  result.message = util.format(message, ...params);
  for (const param of [message, ...params]) {
    if (param instanceof Error) {
      result.errorType = param?.constructor?.name ?? "UnknownError";
      result.errorMessage = param.message;
      result.stackTrace = typeof param.stack === "string" ? param.stack.split("\n") : [];
      break;
    }
  }
  return JSON.stringify(result);
}

function writeLog(level, message, ...params) {
  const line = JSON_LOGS
    ? formatJson(level, message, params)
    : `${new Date().toISOString()}\t${globalThis[REQUEST_ID]}\t${level.name}\t${util.format(message, ...params)}`;
  process.stdout.write(line + "\n");
}

function patchConsole() {
  const noop = () => {};
  const minimum = LEVELS[process.env.AWS_LAMBDA_LOG_LEVEL?.toUpperCase()] ?? LEVELS.TRACE;
  const logAt = (level) => (level.priority >= minimum.priority
    ? (message, ...params) => writeLog(level, message, ...params)
    : noop);
  console.trace = logAt(LEVELS.TRACE);
  console.debug = logAt(LEVELS.DEBUG);
  console.info = logAt(LEVELS.INFO);
  console.log = console.info;
  console.warn = logAt(LEVELS.WARN);
  console.error = logAt(LEVELS.ERROR);
  console.fatal = (message, ...params) => writeLog(LEVELS.FATAL, message, ...params);
}

function logError(label, err) {
  if (JSON_LOGS) console.error(intoError(err));
  else console.error(label, toFormatted(intoError(err)));
}

// --- the Runtime API client ----------------------------------------------------------------------------------

class RuntimeApiClient {
  constructor(address) {
    const [hostname, port] = address.split(":");
    this.hostname = hostname;
    this.port = parseInt(port, 10);
    // An idle keep-alive socket is unref'd by the agent: it never holds the event loop open.
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  }

  request(method, urlPath, body, headers = {}) {
    return new Promise((resolve, reject) => {
      const options = { hostname: this.hostname, port: this.port, path: `/2018-06-01/runtime${urlPath}`, method,
        agent: this.agent, headers };
      if (body !== undefined) {
        options.headers = { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body),
          ...headers };
      }
      const req = http.request(options, (res) => {
        const chunks = [];
        res.on("data", (chunk) => chunks.push(chunk));
        res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(body);
    });
  }

  async nextInvocation() {
    for (;;) {
      const res = await this.request("GET", "/invocation/next");
      if (res.status === 200) return { bodyJson: res.body.toString("utf8"), headers: res.headers };
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  async postInvocationResponse(response, id) {
    await this.request("POST", `/invocation/${encodeURIComponent(id)}/response`, serialize(response));
  }

  async postInvocationError(error, id) {
    await this.request("POST", `/invocation/${encodeURIComponent(id)}/error`,
      serialize(toRapidResponse(error)));
  }

  async postInitError(error) {
    const body = toRapidResponse(error);
    await this.request("POST", "/init/error", serialize(body), { [ERROR_TYPE_HEADER]: body.errorType });
  }
}

function serialize(value) {
  try {
    return JSON.stringify(value === undefined ? null : value);
  } catch {
    throw new Error("Unable to stringify response body");
  }
}

// --- loading the handler ------------------------------------------------------------------------------------

const STREAMING = Symbol.for("aws.lambda.runtime.handler.streaming");
const HIGH_WATER_MARK = Symbol.for("aws.lambda.runtime.handler.streaming.highWaterMark");

class HttpResponseStream {
  static from(underlyingStream, prelude) {
    underlyingStream.setContentType("application/vnd.awslambda.http-integration-response");
    const metadata = JSON.stringify(prelude);
    underlyingStream._onBeforeFirstWrite = (write) => {
      write(metadata);
      write(new Uint8Array(8));
    };
    return underlyingStream;
  }
}

function installGlobalAwsLambda() {
  const flag = process.env.AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA;
  if (flag === "1" || flag === "true") return;
  globalThis.awslambda = {
    streamifyResponse: (handler, options) => {
      handler[STREAMING] = "response";
      if (typeof options?.highWaterMark === "number") handler[HIGH_WATER_MARK] = parseInt(options.highWaterMark);
      return handler;
    },
    HttpResponseStream,
  };
}

function hasTypeModule(folder) {
  if (folder.endsWith("/node_modules")) return false;
  const pj = path.join(folder, "package.json");
  if (fs.existsSync(pj)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(pj));
      if (pkg) return pkg.type === "module";
    } catch (e) {
      console.warn(`${pj} cannot be read, it will be ignored for ES module detection purposes.`, e);
      return false;
    }
  }
  return folder === "/" ? false : hasTypeModule(path.resolve(folder, ".."));
}

/**
 * ES modules find packages through NODE_PATH's node_modules directories too (the runtime's SDK,
 * layers), as on AWS since nodejs18.x: see esm_node_path.mjs. Node 22.15+ runs the hooks in-thread
 * (free: installed at start, so `import()` from CommonJS code has them too); Node 18 and 20 run
 * them on a hooks thread that costs 45-70 ms of CPU to start, so there they are installed only
 * before the runtime imports an ES-module handler.
 */
const IN_THREAD_HOOKS = typeof module.registerHooks === "function";
let esmNodePath;

function installEsmNodePath() {
  esmNodePath ??= (async () => {
    const nodePath = process.env.NODE_PATH;
    if (!nodePath) return;
    const hooks = new URL("./esm_node_path.mjs", import.meta.url);
    if (IN_THREAD_HOOKS) {
      const { setNodePath, resolveSync } = await import(hooks);
      setNodePath(nodePath);
      module.registerHooks({ resolve: resolveSync });
    } else if (typeof module.register === "function") {
      module.register(hooks, { data: { nodePath } });
    }
  })();
  return esmNodePath;
}

const requireIfExists = (file) => (fs.existsSync(file) ? require(file) : undefined);
const importIfExists = async (file) => {
  if (!fs.existsSync(file)) return undefined;
  await installEsmNodePath();
  return import(file);
};

/** The module for `module`, tried as AWS's runtime tries it: as named, .js, .mjs, .cjs, then Node's way. */
async function requireUserModule(appRoot, moduleRoot, module) {
  const base = path.resolve(appRoot, moduleRoot, module);
  const asNamed = requireIfExists(base);
  if (asNamed) return asNamed;
  const typeModule = fs.existsSync(base + ".js") && hasTypeModule(path.dirname(base + ".js"));
  if (!typeModule) {
    const commonJs = requireIfExists(base + ".js");
    if (commonJs) return commonJs;
  }
  const loaded = (typeModule && await importIfExists(base + ".js"))
    || await importIfExists(base + ".mjs")
    || requireIfExists(base + ".cjs");
  if (loaded) return loaded;
  return require(require.resolve(module, { paths: [appRoot, moduleRoot] }));
}

async function loadHandler(appRoot, fullHandler) {
  if (fullHandler.includes("..")) {
    throw new MalformedHandlerName(`'${fullHandler}' is not a valid handler name. Use absolute paths when `
      + "specifying root directories in handler names.");
  }
  const handlerString = path.basename(fullHandler);
  const moduleRoot = fullHandler.substring(0, fullHandler.indexOf(handlerString));
  const match = handlerString.match(/^([^.]*)\.(.*)$/);
  if (!match || match.length !== 3) throw new MalformedHandlerName("Bad handler");
  const [, module, handlerPath] = match;
  installGlobalAwsLambda();
  let userApp;
  try {
    userApp = await requireUserModule(appRoot, moduleRoot, module);
  } catch (e) {
    if (e instanceof SyntaxError) throw new UserCodeSyntaxError(e);
    if (e.code !== undefined && e.code === "MODULE_NOT_FOUND") throw new ImportModuleError(e);
    if (e.code === "EACCES" && typeof e.message === "string") {
      // AWS says only "permission denied"; the cause is nearly always a zip made without Unix modes
      e.message += " — files in the deployment package must be readable by all users (mode 644, directories 755)";
    }
    throw e;
  }
  const handler = handlerPath.split(".").reduce((nested, key) => nested && nested[key], userApp);
  if (!handler) throw new HandlerNotFound(`${fullHandler} is undefined or not exported`);
  if (typeof handler !== "function") throw new HandlerNotFound(`${fullHandler} is not a function`);
  return handler;
}

function streamingMode(handler) {
  const mode = handler[STREAMING];
  if (mode === undefined || mode === null || mode === false) return false;
  if (mode === "response") return mode;
  throw new MalformedStreamingHandler("Only response streaming is supported.");
}

// --- the context -----------------------------------------------------------------------------------------------

function parseJsonHeader(value, name) {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new Error(`Cannot parse ${name} as json: ${err.toString()}`);
  }
}

/** Everything AWS puts on `context` besides the callback helpers. */
function invocationData(headers) {
  const deadline = headers["lambda-runtime-deadline-ms"];
  if (headers["lambda-runtime-trace-id"]) process.env._X_AMZN_TRACE_ID = headers["lambda-runtime-trace-id"];
  else delete process.env._X_AMZN_TRACE_ID;
  return {
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    clientContext: parseJsonHeader(headers["lambda-runtime-client-context"], "ClientContext"),
    identity: parseJsonHeader(headers["lambda-runtime-cognito-identity"], "CognitoIdentity"),
    invokedFunctionArn: headers["lambda-runtime-invoked-function-arn"],
    awsRequestId: headers["lambda-runtime-aws-request-id"],
    tenantId: headers["lambda-runtime-aws-tenant-id"],
    getRemainingTimeInMillis: () => deadline - Date.now(),
  };
}

// --- the loop ---------------------------------------------------------------------------------------------------

let beforeExitListener = () => {};
process.on("beforeExit", () => beforeExitListener());

class Runtime {
  constructor(client, handler, errorCallbacks) {
    this.client = client;
    this.handler = handler;
    this.errorCallbacks = errorCallbacks;
    this.streaming = streamingMode(handler) === "response";
  }

  scheduleIteration() {
    setImmediate(() => {
      this.handleOnce().then(() => {}, (err) => {
        console.log(`Unexpected Top Level Error: ${err.toString()}`);
        this.errorCallbacks.uncaughtException(err);
      });
    });
  }

  async handleOnce() {
    const { bodyJson, headers } = await this.client.nextInvocation();
    const id = headers["lambda-runtime-aws-request-id"];
    globalThis[REQUEST_ID] = id;
    globalThis[TENANT_ID] = headers["lambda-runtime-aws-tenant-id"];
    this.setErrorCallbacks(id);
    if (this.streaming) return this.handleStreaming(id, bodyJson, headers);
    const [callback, context, markCompleted] = this.callbackContext(id);
    beforeExitListener = () => {  // neither callback nor promise: answer null once the loop is empty
      markCompleted();
      this.client.postInvocationResponse(null, id).then(() => this.scheduleIteration(), this.fatal);
    };
    try {
      const result = this.handler(JSON.parse(bodyJson), Object.assign(context, invocationData(headers)), callback);
      if (result && typeof result.then === "function") {
        result.then(context.succeed, context.fail).catch(context.fail);
      }
    } catch (err) {
      callback(err);
    }
  }

  /** The callback and context helpers, with AWS's once-only and wait-for-empty-loop semantics. */
  callbackContext(id) {
    const scheduleNext = () => this.scheduleIteration();
    let completed = false;
    let waitForEmptyEventLoop = true;
    const postError = (err) => {
      logError("Invoke Error", err);
      this.client.postInvocationError(err, id).then(scheduleNext, this.fatal);
    };
    const complete = (result) => {
      if (completed) {
        console.error("Invocation has already been reported as done. Cannot call complete more than once per "
          + "invocation.");
        return;
      }
      completed = true;
      this.client.postInvocationResponse(result, id).then(scheduleNext, (err) => {
        if (err instanceof Error && err.message === "Unable to stringify response body") postError(err);
        else this.fatal(err);
      });
    };
    const done = (err, result) => {
      beforeExitListener = () => {};
      if (err !== undefined && err !== null) postError(err);
      else complete(result);
    };
    let finished = false;
    const once = (fn) => (...args) => {
      if (!finished) {
        finished = true;
        fn(...args);
      }
    };
    const callback = once((err, result) => {
      beforeExitListener = () => {};
      if (err !== undefined && err !== null) postError(err);
      else if (!waitForEmptyEventLoop) complete(result);
      else beforeExitListener = () => setImmediate(() => complete(result));
    });
    const context = {
      get callbackWaitsForEmptyEventLoop() {
        return waitForEmptyEventLoop;
      },
      set callbackWaitsForEmptyEventLoop(value) {
        waitForEmptyEventLoop = value;
      },
      succeed: once((result) => done(null, result)),
      fail: once((err) => (err === undefined || err === null ? done("handled") : done(err, null))),
      done: once(done),
    };
    return [callback, context, () => { completed = true; }];
  }

  /** A streaming handler's output, collected and posted as one response. */
  async handleStreaming(id, bodyJson, headers) {
    const chunks = [];
    let onBeforeFirstWrite = null;
    let written = false;
    const stream = new Writable({
      write(chunk, _encoding, cb) {
        chunks.push(Buffer.from(chunk));
        cb();
      },
    });
    const origWrite = stream.write.bind(stream);
    stream.write = (chunk, encoding, cb) => {
      if (typeof chunk !== "string" && !Buffer.isBuffer(chunk) && chunk?.constructor !== Uint8Array) {
        chunk = JSON.stringify(chunk);
      }
      if (!written && typeof stream._onBeforeFirstWrite === "function") stream._onBeforeFirstWrite(origWrite);
      written = true;
      return origWrite(chunk, encoding, cb);
    };
    stream.setContentType = () => {};
    Object.defineProperty(stream, "_onBeforeFirstWrite", {
      get: () => onBeforeFirstWrite, set: (fn) => { onBeforeFirstWrite = fn; }, configurable: true,
    });
    let waitForEmptyEventLoop = true;
    const context = Object.assign({
      get callbackWaitsForEmptyEventLoop() {
        return waitForEmptyEventLoop;
      },
      set callbackWaitsForEmptyEventLoop(value) {
        waitForEmptyEventLoop = value;
      },
    }, invocationData(headers));
    beforeExitListener = () => this.scheduleIteration();
    try {
      const result = this.handler(JSON.parse(bodyJson), stream, context);
      if (!result || typeof result.then !== "function") {
        throw new Error("Streaming does not support non-async handlers.");
      }
      if ((await result) !== undefined) console.warn("Streaming handlers ignore return values.");
      if (!stream.writableFinished) await new Promise((resolve) => stream.on("finish", resolve));
      beforeExitListener = () => {};
      await this.client.request("POST", `/invocation/${encodeURIComponent(id)}/response`, Buffer.concat(chunks));
    } catch (err) {
      beforeExitListener = () => {};
      logError("Invoke Error", err);
      await this.client.postInvocationError(err, id);
    }
    this.scheduleIteration();
  }

  setErrorCallbacks(id) {
    this.errorCallbacks.uncaughtException = (error) => {
      this.client.postInvocationError(error, id).finally(() => process.exit(129));
    };
    this.errorCallbacks.unhandledRejection = (error) => {
      this.client.postInvocationError(error, id).finally(() => process.exit(128));
    };
  }

  fatal = (err) => {
    process.stderr.write(`Lamina runtime: lost the Runtime API: ${err?.stack ?? err}\n`);
    process.exit(1);
  };
}

async function main() {
  patchConsole();
  const client = new RuntimeApiClient(process.env.AWS_LAMBDA_RUNTIME_API || "127.0.0.1:9001");
  const errorCallbacks = {
    uncaughtException: (error) => client.postInitError(error).finally(() => process.exit(129)),
    unhandledRejection: (error) => client.postInitError(error).finally(() => process.exit(128)),
  };
  process.on("uncaughtException", (error) => {
    logError("Uncaught Exception", error);
    errorCallbacks.uncaughtException(error);
  });
  process.on("unhandledRejection", (reason, promise) => {
    const error = new UnhandledPromiseRejection(reason, promise);
    logError("Unhandled Promise Rejection", error);
    errorCallbacks.unhandledRejection(error);
  });
  let runtime;
  try {
    if (IN_THREAD_HOOKS) await installEsmNodePath();
    const handler = await loadHandler(TASK_ROOT, process.env._HANDLER || "");
    runtime = new Runtime(client, handler, errorCallbacks);
  } catch (error) {  // what AWS's runtime reports as an uncaught exception of its init
    logError("Uncaught Exception", error);
    errorCallbacks.uncaughtException(error);
    return;
  }
  runtime.scheduleIteration();
}

main();
