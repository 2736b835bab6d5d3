"""Public data sources, each pinned to one version (a commit and sha256s) and rebuilt into one crops
layout, ``<cache>/<source>/<label>/<group>__<k>.png``: `registry.SOURCES` names them, `base.build` builds one."""
