"""This instance's Asterisk configuration values from the settings, and the trunk files'
re-rendering for a reload."""

from __future__ import annotations

from app.atomic_file import write_atomically
from app.domain.dial_target import PROTOCOLS
from app.domain.trunks import TrunkTable
from app.media_plane.asterisk_process import CONFIG_STAMP_NAME, config_digest
from app.media_plane.config import AsteriskConfigValues, render_trunk_config
from app.media_plane.layout import AsteriskLayout, find_module_dir
from app.media_plane.tls import place_tls_files
from app.media_plane.trunk_config import load_trunks_file
from app.settings import Settings


def layout_of(settings: Settings) -> AsteriskLayout:
    return AsteriskLayout(root=settings.asterisk_root, instance_dir=settings.instance_dir)


def trunks_of(settings: Settings) -> TrunkTable:
    """The trunks file's trunks (TrunkFileError when it is bad)."""
    return load_trunks_file(settings.trunks_file, PROTOCOLS)


def config_values(settings: Settings, layout: AsteriskLayout,
                  trunks: TrunkTable) -> AsteriskConfigValues:
    tls = place_tls_files(layout.instance_dir / "keys", cert=settings.tls_cert_file,
                          key=settings.tls_key_file, far_end_ca=settings.tls_ca_file,
                          addresses=[a for a in (settings.sip_address, settings.sip_address6)
                                     if a])
    return AsteriskConfigValues(
        instance_dir=layout.inside(layout.instance_dir),
        http_port=settings.ari_http_port, sip_port=settings.sip_port,
        ami_port=settings.ami_port, rtp_start=settings.rtp_start, rtp_end=settings.rtp_end,
        ari_user=settings.ari_user, ari_password=settings.ari_password.value,
        ami_user=settings.ami_user, ami_password=settings.ami_password.value,
        sip_endpoint=settings.sip_endpoint, sip_address=settings.sip_address,
        sip_address6=settings.sip_address6, sip_tls_port=settings.sip_tls_port,
        tls_cert_file=layout.inside(tls.cert), tls_key_file=layout.inside(tls.key),
        tls_ca_file=layout.inside(tls.far_end_ca) if tls.far_end_ca else "",
        tls_verify_server=settings.tls_verify_server, rtp_timeout=settings.rtp_timeout,
        dns_nameservers=settings.dns_nameserver_list,
        module_dir=find_module_dir(settings.asterisk_root), trunks=trunks,
        external_address=settings.external_address, local_nets=settings.local_net_list)


def render_trunks(settings: Settings, trunks: TrunkTable) -> None:
    """Rewrite only the trunk files, and mark the running Asterisk as running them (after
    the reload that follows, it does): a restarted service then adopts it."""
    layout = layout_of(settings)
    stamp = layout.instance_dir / "run" / CONFIG_STAMP_NAME
    current = stamp.is_file() and stamp.read_text().strip() == config_digest(layout)
    render_trunk_config(config_values(settings, layout, trunks), layout.config_dir)
    if current:
        write_atomically(stamp, config_digest(layout).encode(), mode=0o600)
