#!/usr/bin/env bash
# A TLS-terminating nginx in front of OpenSearch, with a CA made here, for
# flusso's TLS tests.
#   test/tls/tls.sh start --upstream http://127.0.0.1:9200 --dir DIR
#       makes DIR/ca.crt, a server certificate for "localhost" only (so
#       https://127.0.0.1 is a host-name mismatch), a client certificate,
#       and starts nginx; prints "TLS_PORT MTLS_PORT".  The TLS port takes
#       any client, the mTLS port requires a client certificate signed by
#       the CA.
#   test/tls/tls.sh stop --dir DIR
set -euo pipefail

cmd=${1:-}
shift || true
upstream=""
dir=""
while [ $# -gt 0 ]; do
	case "$1" in
	--upstream) upstream=$2; shift 2 ;;
	--dir) dir=$2; shift 2 ;;
	*) echo "unknown option $1" >&2; exit 2 ;;
	esac
done
[ -n "$dir" ] || { echo "--dir is required" >&2; exit 2; }

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

make_certs() {
	cd "$dir"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=flusso test CA" \
		-keyout ca.key -out ca.crt >/dev/null 2>&1
	openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
		-keyout server.key -out server.csr >/dev/null 2>&1
	printf 'subjectAltName=DNS:localhost\n' >server.ext
	openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
		-extfile server.ext -out server.crt >/dev/null 2>&1
	openssl req -newkey rsa:2048 -nodes -subj "/CN=flusso client" \
		-keyout client.key -out client.csr >/dev/null 2>&1
	openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
		-out client.crt >/dev/null 2>&1
	chmod 600 ./*.key
	cd - >/dev/null
}

write_conf() {
	local tls=$1 mtls=$2 host
	host=${upstream#*://}
	cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
daemon on;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 256; }
http {
    access_log off;
    client_max_body_size 200m;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    upstream opensearch { server $host; keepalive 8; }
    server {
        listen 127.0.0.1:$tls ssl;
        ssl_certificate $dir/server.crt;
        ssl_certificate_key $dir/server.key;
        location / {
            proxy_pass http://opensearch;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
    server {
        listen 127.0.0.1:$mtls ssl;
        ssl_certificate $dir/server.crt;
        ssl_certificate_key $dir/server.key;
        ssl_client_certificate $dir/ca.crt;
        ssl_verify_client on;
        location / {
            proxy_pass http://opensearch;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
}

case "$cmd" in
start)
	[ -n "$upstream" ] || { echo "--upstream is required" >&2; exit 2; }
	mkdir -p "$dir/tmp"
	make_certs
	tls=$(free_port)
	mtls=$(free_port)
	write_conf "$tls" "$mtls"
	/usr/sbin/nginx -c "$dir/nginx.conf" -p "$dir" -e "$dir/error.log"
	for _ in $(seq 50); do
		curl -s --cacert "$dir/ca.crt" "https://localhost:$tls/" >/dev/null && break
		sleep 0.1
	done
	echo "$tls $mtls"
	;;
stop)
	[ -f "$dir/nginx.pid" ] && kill "$(cat "$dir/nginx.pid")" 2>/dev/null || true
	;;
*)
	echo "usage: $0 start|stop --dir DIR [--upstream URL]" >&2
	exit 2
	;;
esac
