def render(md):
    return md.strip() + '\n'
