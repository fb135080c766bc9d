#!/usr/bin/env bash
# Export the collection as it was at COMMIT (plugins, meta, galaxy.yml) from the git checkout REPO into
# DEST/ansible_collections/aimodel/kvm, so that ANSIBLE_COLLECTIONS_PATH=DEST runs that release's modules.
#
#   previous_release.sh REPO COMMIT DEST
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 REPO COMMIT DEST" >&2; exit 2; }
repo=$1 commit=$2 dest=$3
if ! git -C "$repo" cat-file -e "$commit^{commit}" 2>/dev/null; then
    echo "$0: commit $commit is not in the git checkout $repo (a shallow clone? fetch its history)" >&2
    exit 1
fi
coll=$dest/ansible_collections/aimodel/kvm
rm -rf "$coll"
mkdir -p "$coll"
git -C "$repo" archive "$commit" plugins meta galaxy.yml | tar -x -C "$coll"
echo "$coll: $(find "$coll" -type f | wc -l) files of $commit"
