from chainpay.cli import app

app(prog_name="chainpay")
