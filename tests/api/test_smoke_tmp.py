async def test_smoke(api):
    r = await api.call("GET", "/employees", as_="anna")
    print(r.status, r.json)
    assert r.status == 200
    r = await api.call("GET", "/employees")
    print(r.status, r.json, r.headers)
    r = await api.call("GET", "/nope", as_="anna")
    print(r.status, r.json)
    r = await api.call("PATCH", "/employees", as_="anna")
    print(r.status, r.json)
