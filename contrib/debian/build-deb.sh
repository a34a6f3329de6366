#!/bin/sh
# make deb: split an install (make install PREFIX=/usr DESTDIR=ROOT) into
# the three Debian packages a distribution would ship, with dpkg-deb:
#
#   libdistcache1     the shared libraries (.so.1)
#   libdistcache-dev  headers, .so links, static library, pkg-config file,
#                     section 3 manual pages
#   distcache         the tools, section 1, 7 and 8 manual pages, systemd
#                     units and their option files
#
# Depends comes from dpkg-shlibdeps (the libraries the ELF files need), and
# each package is checked with lintian, which must report no error.
#
# Usage: build-deb.sh ROOT OUTDIR VERSION
set -eu

mkdir -p "$2"
root=$(cd "$1" && pwd)
out=$(cd "$2" && pwd)
upstream=$3
here=$(cd "$(dirname "$0")" && pwd)
version=$upstream-1
arch=$(dpkg --print-architecture)
maintainer=${DEB_MAINTAINER:-distcache maintainers <maintainers@distcache.invalid>}
work=$out/build
somajor=${upstream%%.*}
libpkg=libdistcache$somajor

rm -rf "$work"
mkdir -p "$work"
rm -f "$out"/*.deb

# --- file lists: what goes where -------------------------------------------
pkgdir() { echo "$work/$1"; }
move() { # move PKG PATH...: copy files from the install into the package tree
    pkg=$1; shift
    for f in "$@"; do
        [ -e "$root/$f" ] || [ -L "$root/$f" ] || { echo "build-deb: $f is not installed" >&2; exit 1; }
        mkdir -p "$(pkgdir "$pkg")/$(dirname "$f")"
        cp -a "$root/$f" "$(pkgdir "$pkg")/$f"
    done
}

libs="libdistcache libnal libdistcacheserver"
for l in $libs; do
    move "$libpkg" "usr/lib/$l.so.$upstream" "usr/lib/$l.so.$somajor"
    chmod 644 "$(pkgdir "$libpkg")/usr/lib/$l.so.$upstream"
    move libdistcache-dev "usr/lib/$l.so"
done
move libdistcache-dev usr/lib/libdistcache.a usr/lib/pkgconfig/libdistcache.pc
move libdistcache-dev usr/include/distcache usr/include/libnal
move libdistcache-dev usr/share/man/man3
for t in "$root"/usr/bin/*; do move distcache "usr/bin/${t##*/}"; done
for s in 1 7 8; do move distcache "usr/share/man/man$s"; done

# systemd units: the examples, run from /usr/bin, as a system service.
svc=$(pkgdir distcache)
mkdir -p "$svc/lib/systemd/system" "$svc/etc/default"
for u in "$root"/usr/share/doc/distcache/examples/systemd/*.service; do
    name=${u##*/}
    { echo "# Installed by the distcache package: change it with 'systemctl edit', not by copying."
      cat "$u"; } > "$svc/lib/systemd/system/$name"
    chmod 644 "$svc/lib/systemd/system/$name"
done
for d in "$root"/usr/share/doc/distcache/examples/systemd/*.default; do
    name=${d##*/}
    install -m 644 "$d" "$svc/etc/default/${name%.default}"
done

# --- Debian's conventions -------------------------------------------------
strip_elf() {
    find "$1" -type f | while read -r f; do
        case $(file -b "$f") in
            ELF*shared\ object*|ELF*pie\ executable*|ELF*executable*)
                strip --strip-unneeded --remove-section=.comment --remove-section=.note "$f" ;;
            current\ ar\ archive*)
                strip --strip-debug --enable-deterministic-archives "$f" ;;
        esac
    done
}

# Manual pages compressed; each link page (".so manN/page") becomes a
# symbolic link to the compressed page, as dh_installman makes them.
fix_man() {
    mandir=$1/usr/share/man
    [ -d "$mandir" ] || return 0
    find "$mandir" -type f | while read -r p; do
        target=$(sed -n '1s/^\.so man[0-9]\/\(.*\)$/\1/p' "$p")
        if [ -n "$target" ] && [ "$(wc -l < "$p")" -eq 1 ]; then
            sect=${target##*.}
            rm "$p"
            if [ "$(dirname "$p")" = "$mandir/man$sect" ]; then
                ln -s "$target.gz" "$p.gz"
            else
                ln -s "../man$sect/$target.gz" "$p.gz"
            fi
        else
            gzip -9n "$p"
        fi
    done
}

doc() { # copyright and changelog for package $1
    d=$(pkgdir "$1")/usr/share/doc/$1
    mkdir -p "$d"
    cp "$here/copyright" "$d/copyright"
    {
        echo "distcache ($version) unstable; urgency=medium"
        echo
        echo "  * Packaged from the upstream source, version $upstream."
        echo
        echo " -- $maintainer  $(date -u -R)"
    } > "$d/changelog.Debian"
    gzip -9n "$d/changelog.Debian"
    chmod 644 "$d/copyright" "$d/changelog.Debian.gz"
}

for p in "$libpkg" libdistcache-dev distcache; do
    strip_elf "$(pkgdir "$p")"
    fix_man "$(pkgdir "$p")"
    doc "$p"
    mkdir -p "$(pkgdir "$p")/DEBIAN"
done

# The shared libraries: shlibs (what a package linking them depends on) and
# the ldconfig trigger.
for l in $libs; do
    echo "$l $somajor $libpkg (>= $upstream)"
done > "$(pkgdir "$libpkg")/DEBIAN/shlibs"
echo "activate-noawait ldconfig" > "$(pkgdir "$libpkg")/DEBIAN/triggers"
for f in /etc/default/dc_server /etc/default/dc_client; do echo "$f"; done \
    > "$(pkgdir distcache)/DEBIAN/conffiles"

# --- Depends, from the ELF files' needs -------------------------------------
# dpkg-shlibdeps reads debian/control and the shlibs of the packages built
# here (so that nothing of ours resolves to an installed copy).
mkdir -p "$work/src/debian"
cat > "$work/src/debian/control" <<EOF
Source: distcache
Maintainer: $maintainer

Package: $libpkg
Architecture: any

Package: libdistcache-dev
Architecture: any

Package: distcache
Architecture: any
EOF
cp "$(pkgdir "$libpkg")/DEBIAN/shlibs" "$work/src/debian/shlibs.local"
shlibdeps() { # shlibdeps PKG: the Depends its ELF files need
    files=$(find "$(pkgdir "$1")" -path "*/DEBIAN" -prune -o -type f -print | while read -r f; do
        case $(file -b "$f") in ELF*) echo "$f" ;; esac
    done)
    [ -n "$files" ] || return 0
    # shellcheck disable=SC2086
    deps=$(cd "$work/src" && dpkg-shlibdeps -O -x"$libpkg" -l"$(pkgdir "$libpkg")/usr/lib" $files 2>"$work/shlibdeps.err") || {
        cat "$work/shlibdeps.err" >&2
        echo "build-deb: dpkg-shlibdeps failed for $1" >&2
        exit 1
    }
    echo "$deps" | sed -n 's/^shlibs:Depends=//p'
}

installed_size() { du -k -s --exclude=DEBIAN "$1" | cut -f1; }

control() { # control PKG SECTION DEPENDS SUMMARY DESCRIPTION...
    pkg=$1 section=$2 depends=$3 summary=$4
    shift 4
    dir=$(pkgdir "$pkg")
    {
        echo "Package: $pkg"
        echo "Source: distcache"
        echo "Version: $version"
        echo "Architecture: $arch"
        echo "Maintainer: $maintainer"
        echo "Installed-Size: $(installed_size "$dir")"
        [ -z "$depends" ] || echo "Depends: $depends"
        echo "Section: $section"
        echo "Priority: optional"
        echo "Multi-Arch: no"
        echo "Description: $summary"
        for line in "$@"; do
            if [ -z "$line" ]; then echo " ."; else echo " $line"; fi
        done
    } > "$dir/DEBIAN/control"
    (cd "$dir" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | sort |
        xargs -r md5sum > DEBIAN/md5sums)
}

lib_deps=$(shlibdeps "$libpkg")
tool_deps=$(shlibdeps distcache)
if [ -z "$lib_deps" ] || [ -z "$tool_deps" ]; then
    echo "build-deb: dpkg-shlibdeps found no dependency (libraries: '$lib_deps', tools: '$tool_deps')" >&2
    exit 1
fi

control "$libpkg" libs "$lib_deps" "shared TLS session cache - shared libraries" \
    "distcache lets the TLS servers of a farm share one session cache, so" \
    "that any of them can resume a session another negotiated." \
    "" \
    "This package holds the shared libraries: libdistcache (the DC_CTX client" \
    "API, used by Apache's mod_socache_dc and stunnel), and libnal and" \
    "libdistcacheserver, which resolve to it."

control libdistcache-dev libdevel "$libpkg (= $version)" \
    "shared TLS session cache - development files" \
    "distcache lets the TLS servers of a farm share one session cache, so" \
    "that any of them can resume a session another negotiated." \
    "" \
    "This package holds what building a program against the libraries needs:" \
    "the headers, the static library, the pkg-config file and the manual" \
    "pages of the C functions."

control distcache net "$tool_deps" "shared TLS session cache - server and tools" \
    "distcache lets the TLS servers of a farm share one session cache, so" \
    "that any of them can resume a session another negotiated." \
    "" \
    "This package holds the cache server dc_server, the local proxy" \
    "dc_client, dc_admin (inspects a running server), dc_test (checks and" \
    "measures a cache) and dc_snoop (logs the traffic), with systemd units" \
    "that run the two daemons as an unprivileged user in a sandbox."

for p in "$libpkg" libdistcache-dev distcache; do
    dpkg-deb --root-owner-group -Zxz --build "$(pkgdir "$p")" "$out/${p}_${version}_$arch.deb" >/dev/null
done

# lintian: no error allowed (warnings are shown).
if ! command -v lintian >/dev/null 2>&1; then
    echo "build-deb: lintian is not installed: run \`apt-get install -y lintian\` (or make deps)" >&2
    exit 1
fi
status=0
lintian --fail-on error "$out"/*.deb || status=$?
if [ "$status" -ne 0 ]; then
    echo "build-deb: lintian reports errors" >&2
    exit 1
fi
rm -rf "$work"
ls -1 "$out"/*.deb
