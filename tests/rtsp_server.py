"""An RTSP server on 127.0.0.1 for the live-stream tests (GStreamer's, from Debian's packages
gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
python3-gi): ``/usr/bin/python3 tests/rtsp_server.py PORT NAME=FILE ...`` serves each H.264 FILE at
rtsp://127.0.0.1:PORT/NAME, as it is (no re-encoding), paced in real time; prints "ready" once listening."""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

DEMUXERS = {".mp4": "qtdemux", ".mov": "qtdemux", ".avi": "avidemux", ".mkv": "matroskademux"}


def main() -> None:
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(sys.argv[1])
    for mount in sys.argv[2:]:
        name, path = mount.split("=", 1)
        demux = DEMUXERS[path[path.rfind("."):].lower()]
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(f'( filesrc location="{path}" ! {demux} ! h264parse ! rtph264pay name=pay0 pt=96 '
                           "config-interval=1 )")
        factory.set_shared(True)  # every client of a mount sees the same live stream, as with a camera
        server.get_mount_points().add_factory(f"/{name}", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{sys.argv[1]}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
