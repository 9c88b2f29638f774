/**
 * ES-module resolution through NODE_PATH, as AWS Lambda's nodejs18.x and later runtimes give it.
 *
 * Node's ESM resolver ignores NODE_PATH: it looks for a package only in the `node_modules`
 * directories above the importing file. AWS's runtimes also search the `node_modules`
 * directories of NODE_PATH, so that an ES module in /var/task can `import` the runtime's AWS SDK
 * (/var/runtime/node_modules) and packages from layers (/opt/nodejs/node_modules,
 * /opt/nodejs/node<major>/node_modules). These hooks do the same: when Node's own resolution of
 * a bare specifier fails with ERR_MODULE_NOT_FOUND, the package is resolved again, with Node's
 * own resolver (so `exports`, conditions and `main` behave as usual), from the first NODE_PATH
 * `node_modules` directory that holds it, in NODE_PATH order.
 *
 * Used by bootstrap.mjs: in-thread through `module.registerHooks` (`resolveSync`) where Node has
 * it (22.15+), else through `module.register` (`initialize` and `resolve`, on Node's hooks
 * thread). Invariants: Node's own answer always comes first; NODE_PATH entries that are not
 * `node_modules` directories are not searched (Node's walk from them would reach directories
 * outside NODE_PATH); the original error is thrown when no entry holds the package.
 */

import { createRequire } from "node:module";

// built-ins through `require`: cheaper than `import` at start on Node 22+ (see bootstrap.mjs)
const require = createRequire(import.meta.url);
const fs = require("node:fs");
const path = require("node:path");
const { pathToFileURL } = require("node:url");

let roots = [];

/** Takes NODE_PATH (`a:b:c`): its `node_modules` directories become the fallback roots. */
export function setNodePath(nodePath) {
  roots = (nodePath || "").split(path.delimiter)
    .filter((dir) => path.isAbsolute(dir) && path.basename(dir) === "node_modules")
    .map((dir) => ({
      dir,
      // resolving from a file in <dir> looks in <dir>/node_modules, then in <dir> itself
      parentURL: pathToFileURL(path.join(dir, "lamina-node-path.mjs")).href,
    }));
}

export function initialize(data) {
  setNodePath(data?.nodePath);
}

const SCHEME = /^[a-zA-Z][a-zA-Z\d+.-]*:/;

/** The package a bare specifier names ("@scope/name" or "name"), else null. */
function packageName(specifier) {
  if (!specifier || specifier[0] === "." || specifier[0] === "/" || specifier[0] === "#"
      || SCHEME.test(specifier)) {
    return null;
  }
  const parts = specifier.split("/");
  return specifier[0] === "@" ? (parts.length > 1 ? `${parts[0]}/${parts[1]}` : null) : parts[0];
}

function fallbackParents(specifier, error) {
  if (error?.code !== "ERR_MODULE_NOT_FOUND" || roots.length === 0) return [];
  const name = packageName(specifier);
  if (name === null) return [];
  return roots.filter((root) => fs.existsSync(path.join(root.dir, name))).map((root) => root.parentURL);
}

export function resolveSync(specifier, context, nextResolve) {
  try {
    return nextResolve(specifier, context);
  } catch (error) {
    for (const parentURL of fallbackParents(specifier, error)) {
      try {
        return nextResolve(specifier, { ...context, parentURL });
      } catch {
        // not resolvable from there either: try the next entry
      }
    }
    throw error;
  }
}

export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (error) {
    for (const parentURL of fallbackParents(specifier, error)) {
      try {
        return await nextResolve(specifier, { ...context, parentURL });
      } catch {
        // not resolvable from there either: try the next entry
      }
    }
    throw error;
  }
}
