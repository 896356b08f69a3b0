# Sourced by the scripts that run on the GPU machine (run.sh, batch-sizes.sh) from the repository root:
# where the stage and the outputs are, the device, and the staged akidb binary unpacked.
# shellcheck shell=bash disable=SC2034 # the variables are the sourcing script's
stage=${AKIDB_GPU_STAGE:-target/gpu-stage}
out=${OUT:-target/gpu-out}
device=${AKIDB_GPU_DEVICE:-cuda}

# unpack_akidb DEST: the staged binary, executable, at DEST. It travels gzipped (the device tool's 64 MiB
# carry limit); a plain one (a dry run's) is taken as it is.
unpack_akidb() {
  if [ -f "$stage/akidb.gz" ]; then
    gzip -dc "$stage/akidb.gz" >"$1"
  elif [ -f "$stage/akidb" ]; then
    cp "$stage/akidb" "$1"
  else
    echo "no $stage/akidb.gz: run scripts/gpu/prepare.sh on the build machine and carry $stage" >&2
    exit 2
  fi
  chmod +x "$1"
}
