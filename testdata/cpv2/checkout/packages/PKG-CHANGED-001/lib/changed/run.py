print('v2, edited after the manifest')
