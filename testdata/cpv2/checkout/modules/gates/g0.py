def g0(manifest, files):
    return sorted(set(files) - {a['path'] for a in manifest['assets']})
