# A private copy of a PostgreSQL installation with this tree's flusso in it.
#
# The installed flusso.so and SQL scripts of a PostgreSQL version are
# whoever installed last (other worktrees install theirs into the same
# /usr/lib/postgresql/N), and a server can only load a flusso.so built for
# it.  Tests that need a version other than the one test/check.sh installed
# into (pg_upgrade from an older version), or another build of flusso
# (test/asan.sh), start their servers from a private copy instead:
#
#   DEST/usr/lib/postgresql/N/bin     postgres and pg_ctl copied, the rest linked
#   DEST/usr/lib/postgresql/N/lib     linked, but flusso.so: this tree's
#   DEST/usr/share/postgresql/N       linked, but extension/flusso*: this tree's
#
# PostgreSQL finds $libdir and its share directory relative to the postgres
# binary when the binary's path ends like the compiled-in one
# (.../usr/lib/postgresql/N/bin), so a server started from DEST loads
# DEST's flusso.so and reads DEST's extension scripts; pg_ctl starts the
# postgres next to it.  Nothing outside DEST is written.
#
# Source this file where version N's binaries are (for 17 and 18: inside the
# root of test/lib/pgroot.sh, through pg_exec; the root sees the host's 15).
#
#   pg_private_tree N DEST                  the copy, without flusso
#   pg_private_flusso N SRC DEST [VAR=...]  build SRC's flusso for N in
#                                           DEST/build (make variables such
#                                           as COPT=... pass on) and put it
#                                           into the copy

pg_private_tree() {
	local major=$1 dest=$2
	local bin=/usr/lib/postgresql/$major/bin lib=/usr/lib/postgresql/$major/lib
	local share=/usr/share/postgresql/$major f name
	[ -x "$bin/postgres" ] || { echo "pgprivate: no PostgreSQL $major at $bin" >&2; return 1; }
	rm -rf "$dest"
	mkdir -p "$dest$bin" "$dest$lib" "$dest$share/extension"
	for f in "$bin"/*; do
		name=$(basename "$f")
		case $name in
		postgres | pg_ctl) cp "$f" "$dest$bin/$name" ;;
		*) ln -s "$f" "$dest$bin/$name" ;;
		esac
	done
	for f in "$lib"/*; do
		name=$(basename "$f")
		[ "$name" = flusso.so ] || ln -s "$f" "$dest$lib/$name"
	done
	for f in "$share"/*; do
		name=$(basename "$f")
		[ "$name" = extension ] || ln -s "$f" "$dest$share/$name"
	done
	for f in "$share"/extension/*; do
		name=$(basename "$f")
		case $name in flusso.control | flusso--*) ;; *) ln -s "$f" "$dest$share/extension/$name" ;; esac
	done
	chmod -R a+rX "$dest"
}

pg_private_flusso() {
	local major=$1 src=$2 dest=$3
	shift 3
	local build=$dest/build
	rm -rf "$build"
	mkdir -p "$build/src"
	cp "$src/Makefile" "$src/flusso.control" "$build/"
	cp -r "$src/sql" "$build/"
	(cd "$src/src" && find . -name '*.[ch]' -exec cp --parents {} "$build/src/" \;)
	make -s -j2 -C "$build" PG_CONFIG="/usr/lib/postgresql/$major/bin/pg_config" WERROR=1 "$@" \
		>"$build/build.log" 2>&1 || { cat "$build/build.log" >&2; return 1; }
	if grep -q "warning:" "$build/build.log"; then
		cat "$build/build.log" >&2
		echo "pgprivate: the build of flusso for PostgreSQL $major printed warnings" >&2
		return 1
	fi
	rm -f "$dest/usr/lib/postgresql/$major/lib/flusso.so"
	cp "$build/flusso.so" "$dest/usr/lib/postgresql/$major/lib/flusso.so"
	cp "$build/flusso.control" "$build"/sql/flusso--*.sql "$dest/usr/share/postgresql/$major/extension/"
	chmod -R a+rX "$dest"
}
