@echo off
rem Double-click to run the trading dashboard on Windows.
rem First run: creates a virtual environment in .venv and installs the requirements.
rem 双击运行：首次运行会创建 .venv 虚拟环境并安装依赖，然后打开浏览器。
setlocal
cd /d "%~dp0"
chcp 65001 >nul

where py >nul 2>nul
if %errorlevel%==0 (set "PYTHON=py -3") else (set "PYTHON=python")

if not exist ".venv\Scripts\python.exe" (
  echo [setup] Creating virtual environment .venv ...
  %PYTHON% -m venv .venv
  if errorlevel 1 (
    echo [error] Python 3.11+ was not found. Install it from python.org and tick "Add to PATH".
    echo [错误] 未找到 Python 3.11+，请从 python.org 安装并勾选 "Add to PATH"。
    pause
    exit /b 1
  )
)

echo [setup] Installing requirements ...
".venv\Scripts\python.exe" -m pip install --disable-pip-version-check -q -r requirements.txt
if errorlevel 1 (
  echo [error] pip install failed - check your internet connection.
  echo [错误] 依赖安装失败，请检查网络连接。
  pause
  exit /b 1
)

if not exist ".env" if exist ".env.example" copy ".env.example" ".env" >nul

rem Open the browser a few seconds after the server starts.
start "" cmd /c "timeout /t 4 >nul & start http://127.0.0.1:5000"
".venv\Scripts\python.exe" -m web.app %*
if errorlevel 1 pause
endlocal
