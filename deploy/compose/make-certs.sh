#!/bin/sh
# Makes the certificates of a local federation once: a CA of its own, and for
# each host a P-256 key and a certificate signed by that CA.
#
#   make-certs.sh DIR NAME=DNSNAME,DNSNAME... [NAME=...]
#
# writes DIR/ca.pem, and DIR/NAME.pem and DIR/NAME.key for each NAME, valid
# for the DNS names after "=". The compose file's "certs" service runs it
# before any node starts; running it again keeps what exists and only adds
# what is missing, so the nodes keep trusting one CA. Keys belong to the
# nodes' user (NODE_UID, default the image's nonroot 65532) when run as root.
set -eu

if [ $# -lt 2 ]; then
	echo "usage: $0 DIR NAME=DNSNAME,... [NAME=DNSNAME,...]" >&2
	exit 2
fi
dir=$1
shift
node_uid=${NODE_UID:-65532}

mkdir -p "$dir"
chmod 0755 "$dir"
cd "$dir"

if [ ! -f ca.pem ] || [ ! -f ca.key ]; then
	rm -f ca.pem ca.key ca.srl
	(umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-days 3650 -sha256 -subj "/CN=Entente local federation CA" \
		-addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-addext "subjectKeyIdentifier=hash" \
		-keyout ca.key -out ca.pem) 2>/dev/null
	chmod 0644 ca.pem
	echo "made the CA ca.pem"
fi

for spec in "$@"; do
	name=${spec%%=*}
	names=${spec#*=}
	case $name in
	"" | *[!a-z0-9-]* | ca)
		echo "$0: $spec: NAME must be lower-case letters, digits and dashes, and not ca" >&2
		exit 2
		;;
	esac
	if [ "$names" = "$spec" ] || [ -z "$names" ]; then
		echo "$0: $spec: no DNS names after =" >&2
		exit 2
	fi
	if [ -f "$name.pem" ] && [ -f "$name.key" ]; then
		continue
	fi
	san=""
	first=""
	old_ifs=$IFS
	IFS=,
	for dns in $names; do
		san="${san:+$san,}DNS:$dns"
		first=${first:-$dns}
	done
	IFS=$old_ifs

	cat >"$name.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=$san
authorityKeyIdentifier=keyid
EXT
	(umask 077 && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-subj "/CN=$first" -keyout "$name.key" -out "$name.csr") 2>/dev/null
	openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
		-days 825 -sha256 -extfile "$name.ext" -out "$name.pem" 2>/dev/null
	rm -f "$name.csr" "$name.ext"
	chmod 0644 "$name.pem"
	chmod 0600 "$name.key"
	if [ "$(id -u)" = 0 ]; then
		chown "$node_uid:$node_uid" "$name.key"
	fi
	echo "made $name.pem for $names"
done
