#!/usr/bin/env bash
# Deploy Foresight's Modal inference app (the target behind `make deploy-modal`).
#
# Environment:
#   FORESIGHT_INFERENCE_BACKEND      gemma3 (default) | streamingvlm: which app to deploy
#   FORESIGHT_MODAL_ENVIRONMENT      Modal environment to deploy into (default: main)
#   GEMMA3_VLM_MODAL_APP_NAME        app name of the Gemma 3 app (default: foresight-gemma3-vlm)
#   STREAMINGVLM_MODAL_APP_NAME      app name of the legacy app (default: foresight-streamingvlm)
#   FORESIGHT_GEMMA3_HF_SECRET_NAME  Modal secret holding HF_TOKEN (sets GEMMA3_HF_SECRET_NAME
#                                    unless that is already set); required for gemma3, whose
#                                    model is gated on Hugging Face
#   FORESIGHT_HF_MODEL_PUBLIC=1      deploy gemma3 without a secret (a public or ungated
#                                    GEMMA3_MODEL_ID)
#   GEMMA3_* / STREAMINGVLM_*        model knobs, passed through (see docs/modal.md)
#   MODAL_BIN                        modal CLI to run (default: modal)
#   FORESIGHT_DEPLOY_DRY_RUN=1       print the deploy command instead of running it
# Modal credentials are the CLI's own: `modal token new`, or MODAL_TOKEN_ID/MODAL_TOKEN_SECRET.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
modal_bin="${MODAL_BIN:-modal}"

die() {
	printf 'deploy-modal: %s\n' "$*" >&2
	exit 1
}

# Go calls the app with CBOR-encoded arguments, which needs an app deployed by
# Modal's Python SDK 1.2 or newer.
if ! command -v "$modal_bin" >/dev/null 2>&1; then
	die "the Modal CLI ('$modal_bin') is not installed or not on PATH.
Install Modal's Python SDK 1.2 or newer:  pip install 'modal>=1.2'
then authenticate once:                   modal token new"
fi

if ! version_output="$("$modal_bin" --version 2>&1)"; then
	die "'$modal_bin --version' failed: $version_output"
fi
# Prints e.g. "modal client version: 1.2.1".
version="$(printf '%s\n' "$version_output" | grep -Eo '[0-9]+\.[0-9]+(\.[0-9]+)?' | head -n 1 || true)"
if [[ -z "$version" ]]; then
	die "cannot read the Modal SDK version from: $version_output"
fi
major="${version%%.*}"
rest="${version#*.}"
minor="${rest%%.*}"
if ((major < 1 || (major == 1 && minor < 2))); then
	die "Modal SDK $version is too old: 1.2 or newer is required (calls from Go use CBOR).
Upgrade with:  pip install -U 'modal>=1.2'"
fi

environment="${FORESIGHT_MODAL_ENVIRONMENT:-main}"
backend="${FORESIGHT_INFERENCE_BACKEND:-gemma3}"

case "$backend" in
gemma3)
	app_file="$here/gemma3_vlm_app.py"
	app_name="${GEMMA3_VLM_MODAL_APP_NAME:-foresight-gemma3-vlm}"
	class_name="Gemma3VLMSession"
	export GEMMA3_VLM_MODAL_APP_NAME="$app_name"
	if [[ -z "${GEMMA3_HF_SECRET_NAME:-}" && -n "${FORESIGHT_GEMMA3_HF_SECRET_NAME:-}" ]]; then
		export GEMMA3_HF_SECRET_NAME="$FORESIGHT_GEMMA3_HF_SECRET_NAME"
	fi
	# google/gemma-3-* is gated: without a token every container start fails
	# with 401 and every call times out, which is far harder to see than this.
	hf_secret="${GEMMA3_HF_SECRET_NAME:-}"
	if [[ -z "${hf_secret// /}" && "${FORESIGHT_HF_MODEL_PUBLIC:-}" != 1 ]]; then
		die "the Gemma 3 model (${GEMMA3_MODEL_ID:-google/gemma-3-4b-it}) is gated on Hugging Face, and no secret holding a token is named.
Accept the licence on Hugging Face, store a token as a Modal secret:
  modal secret create hf-token HF_TOKEN=hf_...
then deploy with:  FORESIGHT_GEMMA3_HF_SECRET_NAME=hf-token make deploy-modal
(if GEMMA3_MODEL_ID names a public model, set FORESIGHT_HF_MODEL_PUBLIC=1 instead)"
	fi
	;;
streamingvlm)
	app_file="$here/streaming_vlm_app.py"
	app_name="${STREAMINGVLM_MODAL_APP_NAME:-foresight-streamingvlm}"
	class_name="StreamingVLMSession"
	export STREAMINGVLM_MODAL_APP_NAME="$app_name"
	;;
none)
	die "FORESIGHT_INFERENCE_BACKEND=none: there is nothing to deploy"
	;;
*)
	die "unknown FORESIGHT_INFERENCE_BACKEND='$backend' (want gemma3 or streamingvlm)"
	;;
esac

cmd=("$modal_bin" deploy -e "$environment" "$app_file")
printf 'deploy-modal: backend=%s app=%s class=%s environment=%s (modal %s)\n' \
	"$backend" "$app_name" "$class_name" "$environment" "$version"
if [[ -n "${GEMMA3_HF_SECRET_NAME:-}" && "$backend" == gemma3 ]]; then
	printf 'deploy-modal: Hugging Face secret: %s\n' "$GEMMA3_HF_SECRET_NAME"
fi

if [[ "${FORESIGHT_DEPLOY_DRY_RUN:-}" == 1 ]]; then
	printf 'deploy-modal: dry run:'
	printf ' %q' "${cmd[@]}"
	printf '\n'
	exit 0
fi

"${cmd[@]}"

printf '\ndeploy-modal: deployed. Point the Go server at it with:\n'
printf '  FORESIGHT_INFERENCE_BACKEND=%s MODAL_ENVIRONMENT=%s\n' "$backend" "$environment"
if [[ "$backend" == gemma3 && "$app_name" != foresight-gemma3-vlm ]] ||
	[[ "$backend" == streamingvlm && "$app_name" != foresight-streamingvlm ]]; then
	printf '  FORESIGHT_MODAL_APP_NAME=%s FORESIGHT_MODAL_CLASS_NAME=%s\n' "$app_name" "$class_name"
fi
