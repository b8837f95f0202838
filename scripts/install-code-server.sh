#!/usr/bin/env bash
# Installs code-server (VS Code in a browser) for the end-to-end test of the VS Code
# extension (test/e2e/vscode/), OUTSIDE the repository's dependencies:
#   ${QKIT_CODE_SERVER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qubes-kit/code-server-4.100.3}
# An install that finished before is reused (the `.complete` stamp), so CI caches can keep it.
#
# Needs: Node 20 and npm, a C++ toolchain, Debian's `libkrb5-dev` (the `kerberos` module) and
# `ripgrep` (copied into `@vscode/ripgrep/bin`, so nothing is downloaded from GitHub).
# With `--apt` (CI, as root) it first installs those and `chromium` with apt-get.
# Prints the path of the `code-server` launcher on its last line.
set -euo pipefail

VERSION=4.100.3
DIR="${QKIT_CODE_SERVER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qubes-kit/code-server-$VERSION}"
BIN="$DIR/node_modules/code-server/out/node/entry.js"

if [[ "${1:-}" == "--apt" ]]; then
  need=()
  command -v rg >/dev/null 2>&1 || need+=(ripgrep)
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  dpkg -s libkrb5-dev >/dev/null 2>&1 || need+=(libkrb5-dev)
  command -v g++ >/dev/null 2>&1 || need+=(g++)
  command -v make >/dev/null 2>&1 || need+=(make)
  if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi

if [[ -f "$DIR/.complete" && -f "$BIN" ]]; then
  echo "code-server $VERSION already installed in $DIR" >&2
  echo "$DIR/node_modules/.bin/code-server"
  exit 0
fi

RG="$(command -v rg || true)"
if [[ -z "$RG" ]]; then
  echo "install-code-server: ripgrep (rg) is not installed; install Debian's ripgrep (or run with --apt as root)" >&2
  exit 1
fi
if [[ ! -e /usr/include/gssapi/gssapi.h && ! -e /usr/include/krb5.h ]]; then
  echo "install-code-server: the Kerberos headers are missing; install Debian's libkrb5-dev (or run with --apt as root)" >&2
  exit 1
fi

rm -rf "$DIR"
mkdir -p "$DIR"
cd "$DIR"
echo '{"name":"qkit-code-server","private":true}' > package.json
# The package's postinstall would download ripgrep and build everything; do those steps here.
npm install --no-audit --no-fund --ignore-scripts --omit=dev "code-server@$VERSION" >&2

# The package's own dependencies: only argon2 (password hashing) is native; build it here
# rather than download a prebuilt binary.
npm rebuild --build-from-source >&2

# What the package's postinstall.sh does, without its downloads: install VS Code's
# dependencies, with Debian's rg as @vscode/ripgrep's binary (its postinstall then sees
# `bin/` and downloads nothing), build the native modules, and make its symlinks.
VSCODE="$DIR/node_modules/code-server/lib/vscode"
cd "$VSCODE"
npm install --no-audit --no-fund --ignore-scripts --omit=dev >&2
while IFS= read -r -d '' pkg; do
  mkdir -p "$pkg/bin"
  cp "$RG" "$pkg/bin/rg"
done < <(find "$VSCODE/node_modules" -type d -path '*/@vscode/ripgrep' -print0)
# node-pty's post-install runs `npx node-gyp` (for compile_commands.json): let npx fetch it.
npm_config_yes=true npm rebuild >&2
ln -sfn node_modules node_modules.asar
ln -sfn code-linux.sh bin/remote-cli/code-server
ln -sfn browser-linux.sh bin/helpers/browser.sh
# The built-in extensions' shared dependencies (TypeScript for the TS/JS features) are left
# out: the test does not use them, and they are 20 MB.

touch "$DIR/.complete"
echo "code-server $VERSION installed in $DIR" >&2
echo "$DIR/node_modules/.bin/code-server"
