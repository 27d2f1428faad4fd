# The media plane: Asterisk 22 from Debian unstable (Debian 12 and 13 have no asterisk package).
FROM debian:sid-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      asterisk asterisk-modules asterisk-config \
 && rm -rf /var/lib/apt/lists/*
# The configuration is rendered by the voxcast image into the shared /srv/voxcast volume.
CMD ["/usr/sbin/asterisk", "-f", "-n", "-C", "/srv/voxcast/default/etc/asterisk.conf"]
